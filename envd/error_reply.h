#pragma once
// Whole error replies in the two shapes envd answers with (defined in router.cpp, beside Reply's
// other uses):
// - envd's jsonError (contract §1.6): `{"code":<status>,"message":"<text>"}` and a newline, with
//   Content-Type: application/json; charset=utf-8 and X-Content-Type-Options: nosniff;
// - Go's http.Error: the text and a newline, text/plain; charset=utf-8, nosniff (oapi-codegen's
//   400s, ServeContent's 416s, chi's 404).
#include <string_view>

#include "envd/router.h"

namespace envd {

Reply json_error_reply(int status, std::string_view message);
Reply text_error_reply(int status, std::string_view message);

}  // namespace envd
