#pragma once
// Content-Disposition and Content-Type of a download, as envd's Go code makes them (contract §6.5):
// mime.FormatMediaType("inline", {filename}) and mime.TypeByExtension / http.DetectContentType.
// (Kept here until the REST toolkit's content helpers land; then these move there.)
#include <string>
#include <string_view>

namespace envd::fs {

// `inline; filename=<token>`, `inline; filename="<quoted, \" and \\ escaped>"`, or RFC 2231
// `inline; filename*=utf-8''<pct-encoded>` when the name has non-ASCII or control bytes (tab aside).
std::string inline_disposition(std::string_view filename);

// Go's filepath.Ext: from the last '.' of the last element ("" when none).
std::string_view path_ext(std::string_view path);

// mime.TypeByExtension: Go's built-in table first, then the system database Go reads
// (/usr/local/share/mime/globs2 or /usr/share/mime/globs2 if present, else the mime.types files);
// text/* types get "; charset=utf-8". "" when unknown. Reads files: call it on the blocking pool.
std::string type_by_extension(std::string_view ext);

// http.DetectContentType over the first 512 bytes (the common signatures, then text vs binary).
std::string sniff_content_type(std::string_view head);

}  // namespace envd::fs
