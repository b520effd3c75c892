#include "envd/rest/multipart.h"

#include <algorithm>

#include "envd/ascii.h"
#include "envd/rest/query.h"

namespace envd::rest {
namespace {

std::string_view skip_lwsp(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::string_view trim(std::string_view s) {
  s = skip_lwsp(s);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view strip_eol(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  return s;
}

}  // namespace

MultipartBoundary multipart_boundary(std::string_view content_type) {
  MultipartBoundary r;
  auto mt = parse_media_type(content_type);
  if (!mt) {
    r.error = "mime: invalid media parameter";
    return r;
  }
  if (mt->type.rfind("multipart/", 0) != 0) {
    r.error = "request Content-Type isn't multipart/form-data";
    return r;
  }
  auto it = mt->params.find("boundary");
  if (it == mt->params.end() || it->second.empty()) {
    r.error = "no multipart boundary param in Content-Type";
    return r;
  }
  r.boundary = it->second;
  return r;
}

std::optional<std::string_view> PartHeaders::get(std::string_view name) const {
  for (const auto& [k, v] : fields_) {
    if (ascii::iequals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::string PartHeaders::form_name() const {
  if (!disposition_ || disposition_->type != "form-data") return "";
  auto it = disposition_->params.find("name");
  return it == disposition_->params.end() ? "" : it->second;
}

std::optional<std::string> PartHeaders::filename() const {
  if (!disposition_) return std::nullopt;
  auto it = disposition_->params.find("filename");
  if (it == disposition_->params.end()) return std::nullopt;
  return it->second;
}

MultipartReader::MultipartReader(std::string boundary, std::size_t max_header_bytes)
    : boundary_(std::move(boundary)),
      dash_boundary_("--" + boundary_),
      delim_("\r\n--" + boundary_),
      max_header_bytes_(max_header_bytes) {}

MultipartEvent MultipartReader::fail(std::string why) {
  error_ = std::move(why);
  state_ = State::failed;
  return MultipartEvent::error;
}

bool MultipartReader::take_line(std::string_view& in, std::size_t limit) {
  auto nl = in.find('\n');
  std::size_t n = nl == std::string_view::npos ? in.size() : nl + 1;
  std::size_t room = line_.size() < limit ? limit - line_.size() : 0;
  if (n > room) line_too_long_ = true;
  line_.append(in.substr(0, std::min(n, room)));
  in.remove_prefix(n);
  return nl != std::string_view::npos;
}

MultipartEvent MultipartReader::on_preamble_line() {
  std::string_view line = line_;
  if (!line_too_long_ && line.substr(0, dash_boundary_.size()) == dash_boundary_) {
    std::string_view rest = skip_lwsp(line.substr(dash_boundary_.size()));
    if (rest == "\n") {  // the first delimiter line ends in a bare LF: LF mode for the whole body
      nl_ = "\n";
      delim_ = "\n" + dash_boundary_;
    }
    if (rest == nl_) {
      line_.clear();
      state_ = State::headers;
      header_bytes_ = 0;
      headers_ = PartHeaders{};
      return MultipartEvent::need_more;
    }
    std::string_view after = line.substr(dash_boundary_.size());
    if (after.substr(0, 2) == "--") {
      std::string_view tail = skip_lwsp(after.substr(2));
      if (tail.empty() || tail == nl_) {
        line_.clear();
        state_ = State::epilogue;
        return MultipartEvent::done;
      }
    }
  }
  line_.clear();
  line_too_long_ = false;
  return MultipartEvent::need_more;
}

MultipartEvent MultipartReader::on_delimiter_line() {
  std::string full = dash_boundary_ + line_;
  line_.clear();
  bool too_long = line_too_long_;
  line_too_long_ = false;
  std::string_view after = std::string_view(full).substr(dash_boundary_.size());
  if (skip_lwsp(after) == nl_ && !too_long) {
    state_ = State::headers;
    header_bytes_ = 0;
    headers_ = PartHeaders{};
    return MultipartEvent::need_more;
  }
  if (after.substr(0, 2) == "--") {
    std::string_view tail = skip_lwsp(after.substr(2));
    if (tail.empty() || tail == nl_) {
      state_ = State::epilogue;
      return MultipartEvent::done;
    }
  }
  return fail("multipart: expecting a new Part; got line " + go_quote(full));
}

MultipartEvent MultipartReader::on_header_line() {
  std::string_view line = strip_eol(line_);
  if (line.empty()) {
    line_.clear();
    if (auto cd = headers_.get("Content-Disposition")) headers_.disposition_ = parse_media_type(*cd);
    state_ = State::body;
    in_part_ = true;
    return MultipartEvent::part_begin;
  }
  if (line.front() == ' ' || line.front() == '\t') {
    if (headers_.fields_.empty()) return fail("malformed MIME header initial line: " + go_quote(line));
    auto& v = headers_.fields_.back().second;
    v += ' ';
    v += trim(line);
    line_.clear();
    return MultipartEvent::need_more;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return fail("malformed MIME header: missing colon: " + go_quote(line));
  std::string_view key = line.substr(0, colon);
  if (key.empty() || !std::all_of(key.begin(), key.end(), is_token_char)) {
    return fail("malformed MIME header line: " + go_quote(line));
  }
  headers_.fields_.emplace_back(std::string(key), std::string(trim(line.substr(colon + 1))));
  line_.clear();
  return MultipartEvent::need_more;
}

MultipartEvent MultipartReader::body_hold(std::string_view& in) {
  const std::size_t d = delim_.size();
  // Look at most one byte past the delimiter, two when that byte is '-'.
  auto want = [&] { return hold_.size() > d && hold_[d] == '-' ? d + 2 : d + 1; };
  while (hold_.size() < want() && !in.empty()) {
    hold_.push_back(in.front());
    in.remove_prefix(1);
  }
  std::size_t common = std::min(hold_.size(), d);
  if (hold_.compare(0, common, delim_, 0, common) == 0) {
    if (hold_.size() < want()) return MultipartEvent::need_more;  // `in` is used up
    if (hold_.size() > d) {
      char c = hold_[d];
      bool boundary = c == ' ' || c == '\t' || c == '\r' || c == '\n' || (c == '-' && hold_[d + 1] == '-');
      if (boundary) {
        line_ = hold_.substr(d);
        line_too_long_ = false;
        hold_.clear();
        state_ = State::after_delimiter;
        in_part_ = false;
        return MultipartEvent::part_end;
      }
    }
  }
  // Not a delimiter: give out the bytes before the next place one could start.
  std::size_t k = hold_.find(delim_[0], 1);
  if (k == std::string::npos) k = hold_.size();
  out_.assign(hold_, 0, k);
  hold_.erase(0, k);
  data_ = out_;
  return MultipartEvent::data;
}

MultipartEvent MultipartReader::body(std::string_view& in) {
  if (!hold_.empty()) return body_hold(in);
  if (in.empty()) return MultipartEvent::need_more;
  auto p = in.find(delim_);
  if (p == std::string_view::npos) {
    // Keep back the longest tail that could begin a delimiter.
    std::size_t from = in.size() >= delim_.size() ? in.size() - (delim_.size() - 1) : 0;
    std::size_t k = in.size();
    for (std::size_t j = from; j < in.size(); ++j) {
      if (in[j] == delim_[0] && delim_.compare(0, in.size() - j, in.data() + j, in.size() - j) == 0) {
        k = j;
        break;
      }
    }
    hold_.assign(in.substr(k));
    if (k == 0) {
      in = {};
      return MultipartEvent::need_more;
    }
    data_ = in.substr(0, k);
    in = {};
    return MultipartEvent::data;
  }
  if (p > 0) {
    data_ = in.substr(0, p);
    in.remove_prefix(p);
    return MultipartEvent::data;
  }
  hold_.assign(in.substr(0, delim_.size()));
  in.remove_prefix(delim_.size());
  return body_hold(in);
}

MultipartEvent MultipartReader::next(std::string_view& in) {
  data_ = {};
  while (true) {
    switch (state_) {
      case State::failed: return MultipartEvent::error;
      case State::epilogue: in = {}; return MultipartEvent::done;
      case State::preamble: {
        if (in.empty()) return MultipartEvent::need_more;
        if (!take_line(in, dash_boundary_.size() + 256)) return MultipartEvent::need_more;
        auto ev = on_preamble_line();
        if (ev != MultipartEvent::need_more) return ev;
        break;
      }
      case State::after_delimiter: {
        if (line_.empty() || line_.back() != '\n') {
          if (in.empty()) return MultipartEvent::need_more;
          if (!take_line(in, 256)) return MultipartEvent::need_more;
        }
        auto ev = on_delimiter_line();
        if (ev != MultipartEvent::need_more) return ev;
        break;
      }
      case State::headers: {
        if (in.empty()) return MultipartEvent::need_more;
        std::size_t limit = max_header_bytes_ - std::min(header_bytes_, max_header_bytes_);
        std::size_t before = line_.size();
        bool complete = take_line(in, limit);
        header_bytes_ += line_.size() - before;
        if (line_too_long_) {
          return fail("multipart: part header block larger than " + std::to_string(max_header_bytes_) + " bytes");
        }
        if (!complete) return MultipartEvent::need_more;
        auto ev = on_header_line();
        if (ev != MultipartEvent::need_more) return ev;
        break;
      }
      case State::body: return body(in);
    }
  }
}

MultipartEvent MultipartReader::finish() {
  switch (state_) {
    case State::failed: return MultipartEvent::error;
    case State::epilogue: return MultipartEvent::done;
    case State::preamble: {
      std::string_view line = line_;
      if (line.substr(0, dash_boundary_.size()) == dash_boundary_) {
        std::string_view after = line.substr(dash_boundary_.size());
        if (after.substr(0, 2) == "--" && skip_lwsp(after.substr(2)).empty()) {
          state_ = State::epilogue;
          return MultipartEvent::done;
        }
      }
      return fail("multipart: NextPart: EOF");
    }
    case State::after_delimiter: {
      std::string_view after = line_;
      if (after.substr(0, 2) == "--" && skip_lwsp(after.substr(2)).empty()) {
        state_ = State::epilogue;
        return MultipartEvent::done;
      }
      return fail("multipart: NextPart: EOF");
    }
    case State::headers: return fail("multipart: NextPart: EOF");
    case State::body: return fail("unexpected EOF");
  }
  return MultipartEvent::error;
}

}  // namespace envd::rest
