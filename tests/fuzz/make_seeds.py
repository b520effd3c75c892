#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/ (run once; the files are committed).

Seeds are small valid inputs that reach deep paths quickly: HTTP/1.1 requests of every shape the
server handles, HTTP/2 frame sequences (after the preface), envelopes, base64 bodies, /init
bodies and header values. Crashes found later are added beside them by hand."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def env(flags, payload):
    return struct.pack(">BI", flags, len(payload)) + payload


echo_json = b'{"text":"hi","number":"3"}'
echo_proto = b"\x0a\x02hi\x18\x03"

# HTTP/1.1
h1 = {
    "health": "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "pipeline": "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /envs HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    "init": 'POST /init HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"envVars":{"A":"1"},"defaultUser":"r"}\n',
    "connect_unary": "POST /envdtest.Echo/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (len(echo_json), echo_json.decode()),
    "connect_chunked": "POST /envdtest.Echo/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"tex\r\n%x\r\n%s\r\n0\r\n\r\n"
    % (len(echo_json) - 5, echo_json[5:].decode()),
    "expect": "POST /envdtest.Echo/Echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/proto\r\nContent-Length: %d\r\n\r\n"
    % len(echo_proto),
    "cors": "OPTIONS /process.Process/List HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\nAccess-Control-Request-Method: POST\r\n\r\n",
    "upgrade": "GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    "basic": "GET /envs HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cm9vdDo=\r\n\r\n",
}
for k, v in h1.items():
    put("http1", k, v)
put("http1", "expect", h1["expect"].encode() + echo_proto)
se = env(0, b'{"count":2,"intervalMs":1}')
put("http1", "connect_stream", b"POST /envdtest.Echo/Ticks HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\nContent-Length: %d\r\n\r\n" % len(se) + se)
ce = env(0, echo_proto)
put("http1", "grpc_web", b"POST /envdtest.Echo/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: %d\r\n\r\n" % len(ce) + ce)
import base64
b = base64.b64encode(ce)
put("http1", "grpc_web_text", b"POST /envdtest.Echo/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web-text\r\nContent-Length: %d\r\n\r\n" % len(b) + b)


# HTTP/2 (after the preface). HPACK literal header field without indexing, new name (0x00).
def lit(name, value):
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


settings = frame(4, 0, 0, b"")
def headers(stream, method, path, extra=(), end_stream=True):
    block = lit(":method", method) + lit(":scheme", "http") + lit(":path", path) + lit(":authority", "x")
    for k, v in extra:
        block += lit(k, v)
    return frame(1, 0x4 | (0x1 if end_stream else 0), stream, block)


put("http2", "health", settings + headers(1, "GET", "/health"))
put("http2", "two_streams", settings + headers(1, "GET", "/health") + headers(3, "GET", "/envs"))
put("http2", "connect_unary", settings + headers(1, "POST", "/envdtest.Echo/Echo", [("content-type", "application/json")], False) + frame(0, 1, 1, echo_json))
put("http2", "grpc", settings + headers(1, "POST", "/envdtest.Echo/Echo", [("content-type", "application/grpc"), ("te", "trailers")], False) + frame(0, 1, 1, env(0, echo_proto)))
put("http2", "grpc_stream", settings + headers(1, "POST", "/envdtest.Echo/Collect", [("content-type", "application/grpc")], False) + frame(0, 0, 1, env(0, echo_proto)) + frame(0, 1, 1, env(0, echo_proto)))
put("http2", "rst_ping_window", settings + headers(1, "POST", "/envdtest.Echo/Echo", [("content-type", "application/proto")], False) + frame(6, 0, 0, b"12345678") + frame(8, 0, 1, struct.pack(">I", 1000)) + frame(3, 0, 1, struct.pack(">I", 8)))
put("http2", "continuation", settings + frame(1, 0, 1, lit(":method", "GET") + lit(":scheme", "http")) + frame(9, 0x4, 1, lit(":path", "/health") + lit(":authority", "x")))

# Envelopes: first byte picks the piece size.
put("envelope", "two", b"\x03" + env(0, b"abc") + env(2, b"{}"))
put("envelope", "big", b"\x10" + struct.pack(">BI", 0, 1 << 20) + b"x" * 10)
put("envelope", "compressed", b"\x01" + env(1, b"\x1f\x8b\x08\x00") + env(0x80, b"grpc-status: 0\r\n"))

put("grpc_web_text", "segments", b"\x02" + base64.b64encode(b"A") + base64.b64encode(b"BC") + base64.b64encode(ce))
put("grpc_web_text", "bad", b"\x05QQ=x")

put("init_json", "full", '{"envVars":{"A":"1","B":"2"},"accessToken":"tok","timestamp":"2025-01-02T03:04:05.123456789Z","defaultUser":"user","defaultWorkdir":"/tmp","hyperloopIP":"1.2.3.4","caBundle":"x","volumeMounts":[{"nfsTarget":"a","path":"/b"}],"lifecycleID":"z"}')
put("init_json", "nested", '{"x":' * 30 + "1" + "}" * 30)
put("init_json", "case", '{"ENVVARS":{"a":"b"},"accesstoken":null,"TimeStamp":"2024-02-29T23:59:59+01:00"}')
put("init_json", "empty", "")

for i, v in enumerate(["1000", "0", "9999999999", "10S", "5m", "99999999H", "1n", "-1", "90", " 3 ", "1.5"]):
    put("headers", "v%d" % i, v)

# Filesystem REST parsers.
for i, v in enumerate(["path=%2Fhome%2Fuser%2Fa+b.txt&username=user", "path=/a&path=/b", "path=%zz&x=1",
                       "signature=v1_abc&signature_expiration=1700000000", "a;b=c&=&&k", "path=%E2%82%AC"]):
    put("query", "q%d" % i, v)
for i, v in enumerate(["bytes=0-99", "bytes=-5", "bytes=10-", "bytes=0-1,5-9, 20-", "bytes=5-1", "items=0-1",
                       "bytes=0-0,-1", "bytes= 1 - 2 "]):
    put("range", "r%d" % i, struct.pack("<I", (1000 << 1)) + v.encode())
put("range", "huge", struct.pack("<I", 1) + b"bytes=9223372036854775800-")
for i, v in enumerate(["gzip", "gzip;q=0.5, identity;q=0.4", "*;q=0", "identity;q=0", "br, deflate", "*",
                       "gzip;q=0, *", "GZIP;Q=1.000"]):
    put("accept_encoding", "a%d" % i, v)
import gzip as _gz
put("gzip", "hello", b"\x07" + _gz.compress(b"hello world" * 10))
put("gzip", "two_members", b"\x03" + _gz.compress(b"a") + _gz.compress(b"b"))
put("gzip", "bomb", b"\x40" + _gz.compress(b"\0" * (1 << 20)))
mp = (b"multipart/form-data; boundary=XyZ\n"
      b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/home/user/a%22b.txt\"\r\n"
      b"Content-Type: application/octet-stream\r\n\r\nhello\r\n--XyZ\r\n"
      b"Content-Disposition: form-data; name=\"file\"; filename*=utf-8''%E2%82%AC.txt\r\n\r\n\r\n--XyZ--\r\n")
put("multipart", "two_parts", b"\x05" + mp)
put("multipart", "lf", b"\x03multipart/form-data; boundary=\"a b\"\n--a b\nContent-Disposition: form-data; name=file; filename=x\n\nbody\n--a b--\n")
# Path resolution: path NUL home NUL default workdir.
for name, v in [("abs", b"/home/user/a/../b\0/home/user\0/work"), ("rel", b"a/./b/../../c//d/\0/home/user\0"),
                ("tilde", b"~/x/../y\0/root\0/w"), ("tilde_user", b"~root/x\0/home/u\0"),
                ("empty", b"\0/home/user\0/default/wd"), ("dotdot", b"../../../etc/passwd\0/home/user/\0"),
                ("relhome", b"x\0relative/home\0")]:
    put("path", name, v)
# Media types: download file names (formatted) and Content-Type / Content-Disposition values (parsed).
for name, v in [("cd_token", b"test.txt"), ("cd_quoted", b'my "document".pdf'),
                ("cd_utf8", "résumé 文.txt".encode()),
                ("ct_multipart", b'multipart/form-data; boundary="----x y"; charset=utf-8'),
                ("cd_2231", b"form-data; name=\"file\"; filename*=utf-8''%E6%96%87%20a.txt"),
                ("cd_cont", b'attachment; filename*0="a"; filename*1*=%20b; filename*2="c\\"d"')]:
    put("media_type", name, v)
# Access checks: flags byte, then Authorization, query string, X-Access-Token, token (lines).
import base64 as _b64
import hashlib as _hl


def _sig(path, op, user, token, exp=None):
    raw = f"{path}:{op}:{user}:{token}" + (f":{exp}" if exp is not None else "")
    return "v1_" + _b64.b64encode(_hl.sha256(raw.encode()).digest()).decode().rstrip("=")


_basic = "Basic " + _b64.b64encode(b"user:").decode()
put("auth", "signed", b"\x02" + f"{_basic}\npath=%2Fhome%2Fuser%2Fa.txt&signature={_sig('/home/user/a.txt', 'read', '', 'tok')}\n\ntok".encode())
put("auth", "signed_exp", b"\x06" + f"Basic x\npath=a&username=user&signature={_sig('a', 'write', 'user', 'tok', 1700000001)}&signature_expiration=1700000001\n\ntok".encode())
put("auth", "expired", b"\x02" + f"\npath=a&signature={_sig('a', 'read', '', 'tok', 1)}&signature_expiration=1\n\ntok".encode())
put("auth", "header", b"\x03" + b"bAsIc dXNlcjpwdw==\npath=x\ntok\ntok")
put("auth", "wrong_header", b"\x03" + b"Basic\npath=x&signature=v1_\ntoK\ntok")
put("auth", "repeated", b"\x02" + b"\npath=a&path=b&signature=x\n\ntok")
put("auth", "open", b"\x00" + b"Basic Og==\nsignature_expiration=abc\n\n")
