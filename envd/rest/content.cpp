#include "envd/rest/content.h"

#include <array>
#include <map>
#include <mutex>

#include "envd/ascii.h"
#include "envd/rest/media_type.h"
#include "envd/text_file.h"

namespace envd::rest {
namespace {

struct MimeTable {
  std::map<std::string, std::string, std::less<>> exact, lowered;

  void set(std::string_view ext, std::string_view type) {
    auto mt = parse_media_type(type);
    if (!mt) return;
    std::string value(type);
    if (mt->type.rfind("text/", 0) == 0 && mt->params.find("charset") == mt->params.end()) {
      mt->params["charset"] = "utf-8";
      value = format_media_type(mt->type, mt->params);
    }
    exact[std::string(ext)] = value;
    lowered[ascii::lower(ext)] = value;
  }

  void builtin() {
    static constexpr std::pair<const char*, const char*> kBuiltin[] = {
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
    for (auto [e, t] : kBuiltin) {
      exact[e] = t;
      lowered[e] = t;
    }
  }

  // weight:type:glob[:flags]; only `*.ext` globs; the first (heaviest) entry of an extension wins,
  // and built-ins are never replaced.
  void load_globs2(std::string_view text) {
    for_each_line(text, [&](std::string_view line) {
      if (line.empty() || line[0] == '#') return;
      std::array<std::string_view, 3> f;
      for (std::size_t i = 0; i < 3; ++i) {
        auto c = line.find(':');
        f[i] = line.substr(0, c);
        line = c == std::string_view::npos ? std::string_view{} : line.substr(c + 1);
        if (c == std::string_view::npos && i < 2) return;
      }
      if (f[0].empty() || f[2].size() < 3 || f[2][0] != '*' || f[2][1] != '.') return;
      std::string_view ext = f[2].substr(1);
      if (ext.find_first_of("?*[") != std::string_view::npos) return;
      if (exact.find(ext) != exact.end()) return;
      set(ext, f[1]);
    });
  }

  // type ext ext ...; '#' comments.
  void load_mime_types(std::string_view text) {
    for_each_line(text, [&](std::string_view line) {
      auto hash = line.find('#');
      if (hash != std::string_view::npos) line = line.substr(0, hash);
      std::string_view type;
      std::size_t i = 0;
      while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
        if (j > i) {
          std::string_view word = line.substr(i, j - i);
          if (type.empty()) {
            type = word;
          } else {
            set("." + std::string(word), type);
          }
        }
        i = j;
      }
    });
  }

  std::string lookup(std::string_view path) const {
    auto slash = path.rfind('/');
    auto dot = path.rfind('.');
    if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) return "";
    std::string_view ext = path.substr(dot);
    if (auto it = exact.find(ext); it != exact.end()) return it->second;
    if (auto it = lowered.find(ascii::lower(ext)); it != lowered.end()) return it->second;
    return "";
  }
};

const MimeTable& system_table() {
  static MimeTable table;
  static std::once_flag once;
  std::call_once(once, [] {
    table.builtin();
    for (const char* globs : {"/usr/local/share/mime/globs2", "/usr/share/mime/globs2"}) {
      if (auto text = read_file(globs)) {
        table.load_globs2(*text);
        return;
      }
    }
    for (const char* f :
         {"/etc/mime.types", "/etc/apache2/mime.types", "/etc/apache/mime.types", "/etc/httpd/conf/mime.types"}) {
      if (auto text = read_file(f)) table.load_mime_types(*text);
    }
  });
  return table;
}

bool is_ws(unsigned char b) { return b == '\t' || b == '\n' || b == '\x0c' || b == '\r' || b == ' '; }

bool starts_with(std::string_view data, std::string_view sig) { return data.substr(0, sig.size()) == sig; }

// `pat` compared with `data & mask`, byte by byte; data must be at least as long as the pattern.
bool masked(std::string_view data, std::string_view pat, std::string_view mask) {
  if (data.size() < pat.size()) return false;
  for (std::size_t i = 0; i < pat.size(); ++i) {
    if ((static_cast<unsigned char>(data[i]) & static_cast<unsigned char>(mask[i])) !=
        static_cast<unsigned char>(pat[i]))
      return false;
  }
  return true;
}

bool html_tag(std::string_view data, std::string_view tag) {
  if (data.size() < tag.size() + 1) return false;
  for (std::size_t i = 0; i < tag.size(); ++i) {
    auto b = static_cast<unsigned char>(tag[i]), db = static_cast<unsigned char>(data[i]);
    if (b >= 'A' && b <= 'Z') db &= 0xDF;
    if (b != db) return false;
  }
  char t = data[tag.size()];
  return t == ' ' || t == '>';
}

bool mp4(std::string_view d) {
  if (d.size() < 12) return false;
  auto u = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(d[i])); };
  std::uint32_t box = u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
  if (d.size() < box || box % 4 != 0) return false;
  if (d.substr(4, 4) != "ftyp") return false;
  for (std::size_t st = 8; st < box; st += 4) {
    if (st == 12) continue;  // the major brand's version
    if (d.substr(st, 3) == "mp4") return true;
  }
  return false;
}

using namespace std::string_view_literals;

}  // namespace

std::string inline_content_disposition(std::string_view base) {
  return format_media_type("inline", {{"filename", std::string(base)}});
}

std::string type_by_extension(std::string_view path) { return system_table().lookup(path); }

std::string type_by_extension_in(std::string_view path, std::string_view globs2, std::string_view mime_types) {
  MimeTable t;
  t.builtin();
  if (!globs2.empty()) {
    t.load_globs2(globs2);
  } else {
    t.load_mime_types(mime_types);
  }
  return t.lookup(path);
}

std::string_view detect_content_type(std::string_view data) {
  if (data.size() > 512) data = data.substr(0, 512);
  std::size_t ws = 0;
  while (ws < data.size() && is_ws(static_cast<unsigned char>(data[ws]))) ++ws;
  std::string_view trimmed = data.substr(ws);

  static constexpr std::string_view kHtml[] = {
      "<!DOCTYPE HTML", "<HTML",  "<HEAD", "<SCRIPT", "<IFRAME", "<H1", "<DIV", "<FONT", "<TABLE", "<A",
      "<STYLE",         "<TITLE", "<B",    "<BODY",   "<BR",     "<P",  "<!--"};
  for (auto tag : kHtml) {
    if (html_tag(trimmed, tag)) return "text/html; charset=utf-8";
  }
  if (starts_with(trimmed, "<?xml")) return "text/xml; charset=utf-8";
  if (starts_with(data, "%PDF-")) return "application/pdf";
  if (starts_with(data, "%!PS-Adobe-")) return "application/postscript";
  if (masked(data, "\xFE\xFF\x00\x00"sv, "\xFF\xFF\x00\x00"sv)) return "text/plain; charset=utf-16be";
  if (masked(data, "\xFF\xFE\x00\x00"sv, "\xFF\xFF\x00\x00"sv)) return "text/plain; charset=utf-16le";
  if (masked(data, "\xEF\xBB\xBF\x00"sv, "\xFF\xFF\xFF\x00"sv)) return "text/plain; charset=utf-8";

  struct Exact {
    std::string_view sig, type;
  };
  static constexpr Exact kImages[] = {
      {"\x00\x00\x01\x00"sv, "image/x-icon"},
      {"\x00\x00\x02\x00"sv, "image/x-icon"},
      {"BM", "image/bmp"},
      {"GIF87a", "image/gif"},
      {"GIF89a", "image/gif"},
  };
  for (auto [sig, type] : kImages) {
    if (starts_with(data, sig)) return type;
  }
  const std::string_view riff_mask = "\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF"sv;
  if (masked(data, "RIFF\x00\x00\x00\x00WEBPVP"sv, riff_mask)) return "image/webp";
  if (starts_with(data, "\x89PNG\x0D\x0A\x1A\x0A")) return "image/png";
  if (starts_with(data, "\xFF\xD8\xFF")) return "image/jpeg";
  if (masked(data,
             "FORM\x00\x00\x00\x00"
             "AIFF"sv,
             riff_mask.substr(0, 12)))
    return "audio/aiff";
  if (starts_with(data, "ID3")) return "audio/mpeg";
  if (starts_with(data, "OggS\x00"sv)) return "application/ogg";
  if (starts_with(data, "MThd\x00\x00\x00\x06"sv)) return "audio/midi";
  if (masked(data,
             "RIFF\x00\x00\x00\x00"
             "AVI "sv,
             riff_mask.substr(0, 12)))
    return "video/avi";
  if (masked(data, "RIFF\x00\x00\x00\x00WAVE"sv, riff_mask.substr(0, 12))) return "audio/wave";
  if (mp4(data)) return "video/mp4";
  if (starts_with(data, "\x1A\x45\xDF\xA3")) return "video/webm";
  {
    std::string pat(34, '\0'), mask(34, '\0');
    pat += "LP";
    mask += "\xFF\xFF";
    if (masked(data, pat, mask)) return "application/vnd.ms-fontobject";
  }
  static constexpr Exact kRest[] = {
      {"\x00\x01\x00\x00"sv, "font/ttf"},
      {"OTTO", "font/otf"},
      {"ttcf", "font/collection"},
      {"wOFF", "font/woff"},
      {"wOF2", "font/woff2"},
      {"\x1F\x8B\x08", "application/x-gzip"},
      {"PK\x03\x04", "application/zip"},
      {"Rar!\x1A\x07\x00"sv, "application/x-rar-compressed"},
      {"Rar!\x1A\x07\x01\x00"sv, "application/x-rar-compressed"},
      {"\x00\x61\x73\x6D"sv, "application/wasm"},
  };
  for (auto [sig, type] : kRest) {
    if (starts_with(data, sig)) return type;
  }
  for (char c : trimmed) {
    auto b = static_cast<unsigned char>(c);
    if (b <= 0x08 || b == 0x0B || (b >= 0x0E && b <= 0x1A) || (b >= 0x1C && b <= 0x1F)) {
      return "application/octet-stream";
    }
  }
  return "text/plain; charset=utf-8";
}

}  // namespace envd::rest
