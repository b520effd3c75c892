#include "envd/rest/quoted_printable.h"

#include <cstdio>

#include "envd/rest/query.h"

namespace envd::rest {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool discardable(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string byte_hex(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

}  // namespace

std::optional<std::string> QuotedPrintableDecoder::feed(std::string_view in, std::string& out) {
  while (!error_ && !in.empty()) {
    std::size_t room = kMaxQpLine - line_.size();
    std::size_t lf = in.substr(0, room).find('\n');
    if (lf == std::string_view::npos) {
      if (in.size() >= room) {
        error_ = "quotedprintable: line longer than " + std::to_string(kMaxQpLine) + " bytes";
        break;
      }
      line_.append(in);
      break;
    }
    std::string_view line = in.substr(0, lf + 1);
    in.remove_prefix(lf + 1);
    if (line_.empty()) {
      error_ = decode_line(line, false, out);
    } else {
      line_.append(line);
      error_ = decode_line(line_, false, out);
      line_.clear();
    }
  }
  return error_;
}

std::optional<std::string> QuotedPrintableDecoder::finish(std::string& out) {
  if (!error_ && !line_.empty()) {
    error_ = decode_line(line_, true, out);
    line_.clear();
  }
  return error_;
}

std::optional<std::string> QuotedPrintableDecoder::decode_line(std::string_view line, bool at_eof, std::string& out) {
  const bool lf = !line.empty() && line.back() == '\n';
  const bool crlf = lf && line.size() >= 2 && line[line.size() - 2] == '\r';
  std::size_t end = line.size();
  while (end > 0 && discardable(line[end - 1])) --end;
  std::string_view body = line.substr(0, end);
  std::string_view stripped = line.substr(end);
  std::optional<std::string> after;  // an error that stands after this line's bytes
  std::string_view eol;
  if (!body.empty() && body.back() == '=') {
    body.remove_suffix(1);
    bool ok =
        stripped.rfind("\n", 0) == 0 || stripped.rfind("\r\n", 0) == 0 || (stripped.empty() && !body.empty() && at_eof);
    if (!ok) after = "quotedprintable: invalid bytes after =: " + go_quote(stripped);
  } else if (lf) {
    eol = crlf ? "\r\n" : "\n";
  }
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '=') {
      int hi = i + 1 < body.size() ? hex_value(body[i + 1]) : -1;
      int lo = i + 2 < body.size() ? hex_value(body[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
      // Not an escape: a literal '=', unless a line break follows it.
      if (i + 1 < body.size() && body[i + 1] != '\r' && body[i + 1] != '\n') {
        out += '=';
        continue;
      }
      if (i + 1 >= body.size()) return std::string("unexpected EOF");
      return "quotedprintable: invalid hex byte " + byte_hex(static_cast<unsigned char>(body[i + 1]));
    }
    const auto u = static_cast<unsigned char>(c);
    if (c != '\t' && c != '\r' && c != '\n' && u < 0x80 && (u < ' ' || u > '~'))
      return "quotedprintable: invalid unescaped byte " + byte_hex(u) + " in body";
    out += c;
  }
  out.append(eol);
  return after;
}

}  // namespace envd::rest
