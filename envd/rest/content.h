#pragma once
// What GET /files puts in Content-Disposition and Content-Type (contract §6.5), as the reference
// envd (Go's mime.FormatMediaType, mime.TypeByExtension and http.DetectContentType) does.
#include <string>
#include <string_view>

namespace envd::rest {

// "inline; filename=<base>": token form, else quoted with \" and \\ escapes, else RFC 2231
// `filename*=utf-8''…` for non-ASCII and control bytes (tab stays quoted).
std::string inline_content_disposition(std::string_view base);

// Go's mime.TypeByExtension for the extension of `path` (from the last '.' after the last '/'):
// Go's built-in table, then the shared-mime-info globs (/usr/local/share/mime/globs2,
// /usr/share/mime/globs2: `*.ext` entries, first by weight, built-ins win) or, when there are
// none, the mime.types files (/etc/mime.types, /etc/apache2/mime.types, /etc/apache/mime.types,
// /etc/httpd/conf/mime.types, which override built-ins). text/* types get "; charset=utf-8".
// Exact extension first, then lower-cased. "" when unknown. Tables load once.
std::string type_by_extension(std::string_view path);

// Go's http.DetectContentType over the first 512 bytes of `data` (the WHATWG sniffing table Go
// implements); never empty: "application/octet-stream" at worst. The fuzzer's entry point.
std::string_view detect_content_type(std::string_view data);

// For tests: the table from a globs2 or mime.types text instead of the system files.
std::string type_by_extension_in(std::string_view path, std::string_view globs2, std::string_view mime_types);

}  // namespace envd::rest
