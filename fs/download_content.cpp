#include "fs/download_content.h"

#include <array>
#include <cctype>
#include <optional>
#include <utility>

#include "envd/text_file.h"

namespace envd::fs {

namespace {

constexpr std::string_view kTspecials = "()<>@,;:\\\"/[]?=";

bool token_char(unsigned char c) {
  return c > 0x20 && c < 0x7F && kTspecials.find(static_cast<char>(c)) == std::string_view::npos;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!token_char(c)) return false;
  }
  return true;
}

// Go's needsEncoding: a rune below ' ' (tab aside) or above '~'; every non-ASCII byte is part of
// such a rune (or invalid UTF-8, which Go reads as U+FFFD).
bool needs_encoding(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < ' ' || c > '~') && c != '\t') return true;
  }
  return false;
}

}  // namespace

std::string inline_disposition(std::string_view name) {
  std::string out = "inline; filename";
  if (needs_encoding(name)) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    out += "*=utf-8''";
    for (unsigned char c : name) {
      if (c <= ' ' || c >= 0x7F || c == '*' || c == '\'' || c == '%' ||
          kTspecials.find(static_cast<char>(c)) != std::string_view::npos) {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 0x0F];
      } else {
        out += static_cast<char>(c);
      }
    }
    return out;
  }
  out += '=';
  if (is_token(name)) return out.append(name);
  out += '"';
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string_view path_ext(std::string_view path) {
  for (std::size_t i = path.size(); i-- > 0;) {
    if (path[i] == '/') break;
    if (path[i] == '.') return path.substr(i);
  }
  return {};
}

namespace {

// Go's builtinTypesLower (mime/type.go).
constexpr std::pair<std::string_view, std::string_view> kBuiltin[] = {
    {".avif", "image/avif"},
    {".css", "text/css; charset=utf-8"},
    {".gif", "image/gif"},
    {".htm", "text/html; charset=utf-8"},
    {".html", "text/html; charset=utf-8"},
    {".jpeg", "image/jpeg"},
    {".jpg", "image/jpeg"},
    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".pdf", "application/pdf"},
    {".png", "image/png"},
    {".svg", "image/svg+xml"},
    {".wasm", "application/wasm"},
    {".webp", "image/webp"},
    {".xml", "text/xml; charset=utf-8"},
};

std::string with_charset(std::string type) {
  if (type.starts_with("text/") && type.find(';') == std::string::npos) type += "; charset=utf-8";
  return type;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// globs2 lines: "weight:type:*.ext" in weight order; the first entry for an extension wins.
std::optional<std::string> from_globs2(const std::string& text, std::string_view ext) {
  std::optional<std::string> found;
  for_each_line(text, [&](std::string_view line) {
    if (found || line.empty() || line.front() == '#') return;
    auto c1 = line.find(':');
    if (c1 == std::string_view::npos) return;
    auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return;
    std::string_view glob = line.substr(c2 + 1);
    if (auto c3 = glob.find(':'); c3 != std::string_view::npos) glob = glob.substr(0, c3);
    if (!glob.starts_with("*.") || glob.substr(1) != ext) return;
    if (glob.find_first_of("*?[", 1) != std::string_view::npos) return;
    found = std::string(line.substr(c1 + 1, c2 - c1 - 1));
  });
  return found;
}

// mime.types lines: "type ext ext …"; a later line for the same extension wins (Go overwrites).
std::optional<std::string> from_mime_types(const std::string& text, std::string_view ext) {
  std::optional<std::string> found;
  std::string_view want = ext.substr(1);
  for_each_line(text, [&](std::string_view line) {
    if (line.empty() || line.front() == '#') return;
    std::string_view rest = line;
    std::string_view type = next_word(rest);
    for (std::string_view w = next_word(rest); !w.empty(); w = next_word(rest)) {
      if (w.front() == '#') break;
      if (w == want) found = std::string(type);
    }
  });
  return found;
}

}  // namespace

std::string type_by_extension(std::string_view ext) {
  if (ext.empty()) return {};
  // Go looks the extension up as given, then lower-cased; built-ins are lower-case.
  for (const std::string& e : {std::string(ext), lower(ext)}) {
    for (const auto& [k, v] : kBuiltin) {
      if (k == e) return std::string(v);
    }
  }
  for (const char* globs : {"/usr/local/share/mime/globs2", "/usr/share/mime/globs2"}) {
    auto file = read_file(globs);
    if (!file) continue;
    const std::string& text = *file;
    // globs2 patterns are case-sensitive as written (mostly lower-case).
    if (auto t = from_globs2(text, ext)) return with_charset(std::move(*t));
    if (auto t = from_globs2(text, lower(ext))) return with_charset(std::move(*t));
    return {};
  }
  std::optional<std::string> found;
  for (const char* file :
       {"/etc/mime.types", "/etc/apache2/mime.types", "/etc/apache/mime.types", "/etc/httpd/conf/mime.types"}) {
    auto text = read_file(file);
    if (!text) continue;
    if (auto t = from_mime_types(*text, lower(ext))) found = std::move(t);
  }
  return found ? with_charset(std::move(*found)) : std::string();
}

namespace {

bool ws(unsigned char c) { return c == '\t' || c == '\n' || c == '\x0c' || c == '\r' || c == ' '; }

bool iequal_prefix(std::string_view data, std::string_view sig) {
  if (data.size() < sig.size()) return false;
  for (std::size_t i = 0; i < sig.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(data[i])) != static_cast<unsigned char>(sig[i])) return false;
  }
  return true;
}

}  // namespace

std::string sniff_content_type(std::string_view data) {
  if (data.size() > 512) data = data.substr(0, 512);
  std::size_t first = 0;
  while (first < data.size() && ws(static_cast<unsigned char>(data[first]))) ++first;
  std::string_view trimmed = data.substr(first);
  static constexpr std::string_view kHtml[] = {
      "<!DOCTYPE HTML", "<HTML",  "<HEAD", "<SCRIPT", "<IFRAME", "<H1", "<DIV", "<FONT", "<TABLE", "<A",
      "<STYLE",         "<TITLE", "<B",    "<BODY",   "<BR",     "<P",  "<!--"};
  for (auto sig : kHtml) {
    if (iequal_prefix(trimmed, sig) && trimmed.size() > sig.size() &&
        (trimmed[sig.size()] == ' ' || trimmed[sig.size()] == '>')) {
      return "text/html; charset=utf-8";
    }
  }
  if (trimmed.starts_with("<?xml")) return "text/xml; charset=utf-8";
  static constexpr std::pair<std::string_view, std::string_view> kExact[] = {
      {"%PDF-", "application/pdf"},
      {"%!PS-Adobe-", "application/postscript"},
      {"\xFE\xFF", "text/plain; charset=utf-16be"},
      {"\xFF\xFE", "text/plain; charset=utf-16le"},
      {"\xEF\xBB\xBF", "text/plain; charset=utf-8"},
      {std::string_view("\x00\x00\x01\x00", 4), "image/x-icon"},
      {std::string_view("\x00\x00\x02\x00", 4), "image/x-icon"},
      {"BM", "image/bmp"},
      {"GIF87a", "image/gif"},
      {"GIF89a", "image/gif"},
      {"\x89PNG\r\n\x1A\n", "image/png"},
      {"\xFF\xD8\xFF", "image/jpeg"},
      {"ID3", "audio/mpeg"},
      {std::string_view("OggS\x00", 5), "application/ogg"},
      {std::string_view("MThd\x00\x00\x00\x06", 8), "audio/midi"},
      {"\x1A\x45\xDF\xA3", "video/webm"},
      {"\x1F\x8B\x08", "application/x-gzip"},
      {"PK\x03\x04", "application/zip"},
      {std::string_view("Rar!\x1A\x07\x00", 7), "application/x-rar-compressed"},
      {std::string_view("Rar!\x1A\x07\x01\x00", 8), "application/x-rar-compressed"},
      {std::string_view("\x00\x61\x73\x6D", 4), "application/wasm"},
  };
  for (const auto& [sig, type] : kExact) {
    if (data.starts_with(sig)) return std::string(type);
  }
  if (data.size() >= 12 && data.starts_with("RIFF")) {
    auto kind = data.substr(8, 4);
    if (kind == "WEBP") return "image/webp";
    if (kind == "WAVE") return "audio/wave";
    if (kind == "AVI ") return "video/avi";
  }
  for (unsigned char c : data) {
    if (c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1A) || (c >= 0x1C && c <= 0x1F)) {
      return "application/octet-stream";
    }
  }
  return "text/plain; charset=utf-8";
}

}  // namespace envd::fs
