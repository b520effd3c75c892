// multipart/form-data upload bodies (POST /files): the boundary from a Content-Type, then the
// body fed in fuzzer-chosen pieces. Part data handed out never exceeds the input, headers stay
// within their bound, and the reader always ends (done, error or need_more). Every part's data
// also goes through the quoted-printable decoder (as a part declaring it would): its output never
// exceeds its input and it keeps no line longer than its bound.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "envd/rest/multipart.h"
#include "envd/rest/quoted_printable.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t piece = 1 + data[0] % 61;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  // The first line is the Content-Type; the remainder is the body.
  auto nl = rest.find('\n');
  if (nl == std::string_view::npos) return 0;
  auto ct = envd::rest::multipart_boundary(rest.substr(0, nl));
  rest.remove_prefix(nl + 1);
  if (ct.boundary.empty()) return 0;

  envd::rest::MultipartReader reader(ct.boundary, 1024);
  std::size_t data_bytes = 0;
  envd::rest::QuotedPrintableDecoder qp;
  std::string decoded;
  std::size_t decoded_bytes = 0, qp_bytes = 0;
  const std::size_t body_size = rest.size();
  while (!rest.empty()) {
    std::string_view chunk = rest.substr(0, piece);
    rest.remove_prefix(chunk.size());
    for (int guard = 0;; ++guard) {
      if (guard > 100000) std::abort();  // no progress: a reader loop that never ends
      auto ev = reader.next(chunk);
      if (ev == envd::rest::MultipartEvent::need_more) break;
      if (ev == envd::rest::MultipartEvent::data) {
        data_bytes += reader.data().size();
        qp_bytes += reader.data().size();
        decoded.clear();
        (void)qp.feed(reader.data(), decoded);
        decoded_bytes += decoded.size();
      }
      if (ev == envd::rest::MultipartEvent::part_end) {
        decoded.clear();
        (void)qp.finish(decoded);
        decoded_bytes += decoded.size();
        if (decoded_bytes > qp_bytes) std::abort();  // decoding never grows the data
        qp = {};
        decoded_bytes = qp_bytes = 0;
      }
      if (ev == envd::rest::MultipartEvent::part_begin) {
        (void)reader.headers().form_name();
        (void)reader.headers().filename();
      }
      if (ev == envd::rest::MultipartEvent::done || ev == envd::rest::MultipartEvent::error) {
        rest = {};
        break;
      }
    }
  }
  if (data_bytes > body_size) std::abort();
  (void)reader.finish();
  return 0;
}
