// Bad and unusual input on raw sockets and node:http2: malformed envelopes, truncated bodies,
// invalid JSON, wrong content types, oversize messages and headers, garbage prefaces, pipelining,
// client disconnects, idle timeouts. After all of it envd still answers and has leaked no fds.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import {
  it, startEnvd, stats, waitFor, delay, withTimeout,
  envelope, parseConnectStream, parseEnvelopes, parseGrpcWebTrailers, parseH1Responses,
  h1Request, h1Bytes, connectJson, rawConnect, h2Connect, h2Request, encode, decode,
} from "./lib/envd.mjs";

let envd; // default limits
let baselineFds;
let baselineRunning;

/** Polls the fd count until three consecutive readings 50 ms apart agree; returns it. */
async function stableFds(d) {
  let last = -1;
  let same = 0;
  return waitFor(async () => {
    const n = d.openFds();
    same = n === last ? same + 1 : 0;
    last = n;
    return same >= 2 ? n : 0;
  }, { timeoutMs: 15000, intervalMs: 50, what: "a stable fd count" });
}

before(async () => {
  envd = await startEnvd();
  // Warm up both protocols once so lazily created descriptors are part of the baseline.
  await h1Request(envd.port, { method: "GET", path: "/health" });
  await stats(envd.port);
  const s = await h2Connect(envd.port);
  await h2Request(s, { method: "GET", path: "/health" });
  s.close();
  await waitFor(() => s.closed && s.destroyed, { what: "h2 session closed" });
  baselineFds = await stableFds(envd);
  baselineRunning = (await stats(envd.port)).running;
});

after(async () => {
  const alive = envd?.alive();
  await envd?.stop();
  assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
});

const post = (path, contentType, body, headers = {}) =>
  h1Request(envd.port, { path, headers: { "content-type": contentType, ...headers }, body });
const jsonOf = (r) => JSON.parse(r.body.toString("utf8"));

/** gRPC status of an h2 response: trailers, or headers for a trailers-only response. */
const grpcStatus = (r) => r.trailers?.["grpc-status"] ?? r.headers?.["grpc-status"];

describe("malformed Connect envelopes", () => {
  it("length prefix larger than the body → 200 with invalid_argument end frame (JSON)", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+json", envelope(0, '{"count":1}', 100));
    assert.equal(r.status, 200);
    const { messages, end } = parseConnectStream(r.body);
    assert.equal(messages.length, 0);
    assert.equal(end?.error?.code, "invalid_argument", JSON.stringify(end));
  });

  it("length prefix larger than the body → invalid_argument (proto)", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+proto", envelope(0, encode("envdtest.TicksRequest", { count: 1 }), 50));
    assert.equal(r.status, 200);
    assert.equal(parseConnectStream(r.body).end?.error?.code, "invalid_argument");
  });

  it("truncated 5-byte prefix → invalid_argument", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+json", Buffer.from([0, 0, 0]));
    assert.equal(r.status, 200);
    assert.equal(parseConnectStream(r.body).end?.error?.code, "invalid_argument");
  });

  it("client stream: a good envelope then a truncated one → invalid_argument", async () => {
    const body = Buffer.concat([envelope(0, '{"text":"a"}'), envelope(0, '{"text":"b"}', 40)]);
    const r = await post("/envdtest.Echo/Collect", "application/connect+json", body);
    assert.equal(r.status, 200);
    assert.equal(parseConnectStream(r.body).end?.error?.code, "invalid_argument");
  });

  it("client stream over chunked HTTP/1.1 with envelopes split across chunks", async () => {
    const whole = Buffer.concat(Array.from({ length: 5 }, (_, i) => envelope(0, JSON.stringify({ payload: Buffer.alloc(100 + i).toString("base64") }))));
    // Cut the body into odd-sized chunks so envelope headers straddle chunk boundaries.
    const chunks = [];
    for (let off = 0; off < whole.length; off += 7) chunks.push(whole.subarray(off, off + 7));
    const r = await h1Request(envd.port, { path: "/envdtest.Echo/Collect", headers: { "content-type": "application/connect+json" }, body: chunks });
    assert.equal(r.status, 200);
    const { messages, end } = parseConnectStream(r.body);
    assert.deepEqual(end, {});
    assert.deepEqual(messages, [{ count: "5", bytes: String(100 + 101 + 102 + 103 + 104) }]);
  });

  it("compressed flag (0x01) without Connect-Content-Encoding → error end frame", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+json", envelope(1, gzipSync(Buffer.from("{}"))));
    assert.equal(r.status, 200);
    const { end } = parseConnectStream(r.body);
    assert.ok(["invalid_argument", "internal"].includes(end?.error?.code), JSON.stringify(end));
  });

  it("a huge declared envelope length is refused without allocating it", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+proto", envelope(0, Buffer.from([8, 1]), 0xffffffff));
    assert.equal(r.status, 200);
    const code = parseConnectStream(r.body).end?.error?.code;
    assert.ok(["resource_exhausted", "invalid_argument"].includes(code), `got ${code}`);
    assert.ok(envd.alive());
  });

  it("gRPC over h2c: length prefix larger than the body → grpc-status 3 (or 13)", async () => {
    const s = await h2Connect(envd.port);
    try {
      const r = await h2Request(s, { path: "/envdtest.Echo/Echo", headers: { "content-type": "application/grpc", te: "trailers" }, body: envelope(0, encode("envdtest.EchoRequest", { text: "x" }), 64) });
      assert.equal(r.status, 200);
      assert.ok(["3", "13"].includes(grpcStatus(r)), `grpc-status ${grpcStatus(r)} ${r.trailers?.["grpc-message"]}`);
    } finally {
      s.close();
    }
  });

  it("gRPC-Web over HTTP/1.1: length prefix larger than the body → non-zero grpc-status", async () => {
    const r = await post("/envdtest.Echo/Echo", "application/grpc-web+proto", envelope(0, encode("envdtest.EchoRequest", { text: "x" }), 64));
    assert.equal(r.status, 200);
    let status = r.headers["grpc-status"];
    if (status === undefined) {
      const tr = parseEnvelopes(r.body).find((e) => e.flags & 0x80);
      assert.ok(tr, "trailer frame present");
      status = parseGrpcWebTrailers(tr.data)["grpc-status"];
    }
    assert.ok(["3", "13"].includes(status), `grpc-status ${status}`);
  });

  it("unary proto body that is not valid protobuf → 400 invalid_argument", async () => {
    const r = await post("/envdtest.Echo/Echo", "application/proto", Buffer.from([0x0a, 0x64, 0x41]));
    assert.equal(r.status, 400);
    assert.equal(jsonOf(r).code, "invalid_argument");
  });
});

describe("truncated HTTP bodies", () => {
  it("Content-Length larger than what is sent, then half-close: connection closed, no hang", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json", "content-length": "100" }, body: '{"text":"shor' }));
    c.sock.end();
    await c.waitClosed(5000);
    // If anything was answered it must be an error, never a 200.
    if (c.data.length) assert.doesNotMatch(c.data.toString("latin1"), /^HTTP\/1\.1 200/);
  });

  it("chunked body cut in the middle of a chunk, then half-close: connection closed", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } }));
    c.sock.write("20\r\n{\"text\":\"cut");
    c.sock.end();
    await c.waitClosed(5000);
    if (c.data.length) assert.doesNotMatch(c.data.toString("latin1"), /^HTTP\/1\.1 200/);
  });

  it("h2 stream reset in the middle of a request body does not hurt the session", async () => {
    const s = await h2Connect(envd.port);
    try {
      const req = s.request({ ":method": "POST", ":path": "/envdtest.Echo/Collect", "content-type": "application/connect+json" });
      req.write(envelope(0, '{"text":"a"}'));
      req.write(Buffer.from([0, 0, 0, 0, 50, 0x7b]));
      await delay(50); // let the partial body reach the server before the reset
      req.close(http2.constants.NGHTTP2_CANCEL);
      const r = await h2Request(s, { method: "GET", path: "/health" });
      assert.equal(r.status, 204);
    } finally {
      s.close();
    }
  });
});

describe("JSON payloads", () => {
  for (const [name, body] of [
    ["truncated JSON", '{"text":'],
    ["a JSON array", "[1,2]"],
    ["a non-numeric int64", '{"number":"abc"}'],
    ["a string field given a number", '{"text":5}'],
    ["not JSON at all", "hello"],
    ["zero-length body", ""],
  ]) {
    it(`unary ${name} → 400 invalid_argument`, async () => {
      const r = await post("/envdtest.Echo/Echo", "application/json", body);
      assert.equal(r.status, 400, r.body.toString());
      assert.equal(jsonOf(r).code, "invalid_argument");
    });
  }

  it("unknown fields are ignored; proto names accepted; charset parameter accepted", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+json", envelope(0, '{"count":1,"payload_size":2,"whatever":{"x":[1]}}'));
    assert.equal(r.status, 200);
    const { messages, end } = parseConnectStream(r.body);
    assert.deepEqual(end, {});
    assert.equal(messages.length, 1);
    const r2 = await post("/envdtest.Echo/Echo", "application/json; charset=utf-8", '{"text":"cs","zzz":1}');
    assert.equal(r2.status, 200);
    assert.deepEqual(jsonOf(r2), { text: "cs" });
  });

  it("invalid JSON inside a Connect stream envelope → invalid_argument end frame", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+json", envelope(0, '{"count":'));
    assert.equal(r.status, 200);
    assert.equal(parseConnectStream(r.body).end?.error?.code, "invalid_argument");
  });

  it("zero-length JSON envelope → invalid_argument; zero-length proto envelope is an empty message", async () => {
    const r = await post("/envdtest.Echo/Ticks", "application/connect+json", envelope(0, ""));
    assert.equal(r.status, 200);
    assert.equal(parseConnectStream(r.body).end?.error?.code, "invalid_argument");
    const r2 = await post("/envdtest.Echo/Ticks", "application/connect+proto", envelope(0, ""));
    assert.equal(r2.status, 200);
    const p = parseConnectStream(r2.body, { json: false });
    assert.equal(p.messages.length, 0, "count 0 → no ticks");
    assert.deepEqual(p.end, {});
  });

  it("zero-length unary proto body is an empty message → 200", async () => {
    const r = await post("/envdtest.Echo/Echo", "application/proto", Buffer.alloc(0));
    assert.equal(r.status, 200);
    assert.match(r.headers["content-type"], /^application\/proto/);
    assert.equal(decode("envdtest.EchoResponse", r.body).text, "");
  });
});

describe("content types", () => {
  it("wrong or missing content type → 415 (HTTP/1.1)", async () => {
    for (const ct of ["text/plain", "application/octet-stream", "application/jsonx", "application/connect+xml", "multipart/form-data"]) {
      const r = await post("/envdtest.Echo/Echo", ct, "{}");
      assert.equal(r.status, 415, ct);
    }
    const r = await h1Request(envd.port, { path: "/envdtest.Echo/Echo", body: "{}" });
    assert.equal(r.status, 415, "no content type");
  });

  it("wrong content type → 415 (h2c)", async () => {
    const s = await h2Connect(envd.port);
    try {
      const r = await h2Request(s, { path: "/envdtest.Echo/Echo", headers: { "content-type": "text/html" }, body: "{}" });
      assert.equal(r.status, 415);
    } finally {
      s.close();
    }
  });
});

describe("garbage on the wire", () => {
  for (const [name, bytes] of [
    ["binary junk", Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a])],
    ["a TLS ClientHello", Buffer.from("160301020001000000000000000000000000000000000000000000000d0a0d0a", "hex")],
    ["a bogus request line", Buffer.from("HELLO THERE\r\n\r\n")],
    ["an unsupported HTTP version", Buffer.from("GET /health HTTP/9.9\r\nHost: x\r\n\r\n")],
  ]) {
    it(`${name} instead of a preface → 400 Bad Request and close`, async () => {
      const c = await rawConnect(envd.port);
      c.sock.write(bytes);
      await c.waitClosed(5000);
      assert.match(c.data.toString("latin1"), /^HTTP\/1\.[01] (400|505)/, JSON.stringify(c.data.toString("latin1").slice(0, 80)));
      if (name !== "an unsupported HTTP version") assert.match(c.data.toString("latin1"), /^HTTP\/1\.[01] 400/);
    });
  }

  it("HTTP/2 preface followed by garbage frames → connection closed", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from("this is not a settings frame at all.....", "latin1")]));
    await c.waitClosed(5000);
  });

  it("a broken HTTP/2 preface → connection closed", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
    await c.waitClosed(5000);
  });

  it("oversize request headers (2 MiB, default limit) → 431 and close; server keeps serving", async () => {
    const c = await rawConnect(envd.port);
    c.sock.on("error", () => {}); // a reset after the answer is acceptable; no answer is not
    c.sock.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(2 * 1024 * 1024)}\r\n\r\n`);
    await c.until((st) => st.data.length >= 12, 15000, "a status line");
    assert.match(c.data.toString("latin1"), /^HTTP\/1\.1 431/);
    await c.waitClosed(5000);
    const r = await h1Request(envd.port, { method: "GET", path: "/health" });
    assert.equal(r.status, 204);
  });

  it("a stalled client (partial headers) does not block others", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write("POST /envdtest.Echo/Echo HTTP/1.1\r\nHost: x\r\nContent-Ty");
    const r = await h1Request(envd.port, { method: "GET", path: "/health" });
    assert.equal(r.status, 204);
    const s = await h2Connect(envd.port);
    const r2 = await h2Request(s, { method: "GET", path: "/health" });
    assert.equal(r2.status, 204);
    s.close();
    c.sock.destroy();
  });
});

describe("HTTP/1.1 framing", () => {
  it("pipelined requests are answered in order on one connection", async () => {
    const c = await rawConnect(envd.port);
    const reqs = [
      h1Bytes({ path: "/envdtest.Echo/Sleep", headers: { "content-type": "application/json" }, body: '{"ms":300}' }),
      h1Bytes({ method: "GET", path: "/health" }),
      h1Bytes({ path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json" }, body: '{"text":"third"}' }),
      h1Bytes({ path: "/envdtest.Echo/Ticks", headers: { "content-type": "application/connect+json" }, body: envelope(0, '{"count":2,"intervalMs":50}') }),
      h1Bytes({ path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json", "transfer-encoding": "chunked" }, body: '6\r\n{"text\r\nA\r\n":"fifth"}\r\n0\r\n\r\n' }),
      h1Bytes({ path: "/envdtest.Echo/Unimplemented", headers: { "content-type": "application/json" }, body: "{}" }),
    ];
    c.sock.write(Buffer.concat(reqs)); // all at once
    await c.until((st) => parseH1Responses(st.data).responses.length >= 6, 10000, "6 responses");
    const rs = parseH1Responses(c.data).responses;
    assert.deepEqual(rs.map((r) => r.status), [200, 204, 200, 200, 200, 501]);
    assert.deepEqual(JSON.parse(rs[2].body), { text: "third" });
    const t = parseConnectStream(rs[3].body);
    assert.equal(t.messages.length, 2);
    assert.deepEqual(t.end, {});
    assert.deepEqual(JSON.parse(rs[4].body), { text: "fifth" });
    assert.equal(JSON.parse(rs[5].body).code, "unimplemented");
    // The connection is still usable.
    c.sock.write(h1Bytes({ method: "GET", path: "/health" }));
    await c.until((st) => parseH1Responses(st.data).responses.length >= 7, 15000, "7th response");
    assert.equal(parseH1Responses(c.data).responses[6].status, 204);
    c.sock.destroy();
  });

  it("chunk extensions and trailers in a chunked request body", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      body: '5;name=value\r\n{"tex\r\nb\r\nt":"ext"}  \r\n0\r\nX-Trailer: yes\r\n\r\n' }));
    await c.until((st) => parseH1Responses(st.data).responses.length >= 1, 15000, "a response");
    const [r] = parseH1Responses(c.data).responses;
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { text: "ext" });
    c.sock.destroy();
  });

  it("Expect: 100-continue → '100 Continue' before the body is sent", async () => {
    const c = await rawConnect(envd.port);
    const body = '{"text":"continued"}';
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json", "content-length": String(body.length), expect: "100-continue" } }));
    await c.until((st) => /^HTTP\/1\.1 100 /.test(st.data.toString("latin1")) && st.data.includes("\r\n\r\n"), 10000, "100 Continue");
    c.sock.write(body);
    await c.until((st) => parseH1Responses(st.data).responses.some((r) => r.status === 200), 15000, "final response");
    const final = parseH1Responses(c.data).responses.find((r) => r.status === 200);
    assert.deepEqual(JSON.parse(final.body), { text: "continued" });
    c.sock.destroy();
  });

  it("Connection: close is honoured", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write(h1Bytes({ method: "GET", path: "/health", headers: { connection: "close" } }));
    await c.waitClosed(5000);
    assert.equal(parseH1Responses(c.data, { closed: true }).responses[0]?.status, 204);
  });

  it("Upgrade: h2c on a POST with a body is handled (upgraded or answered over HTTP/1.1)", async () => {
    const c = await rawConnect(envd.port);
    const body = '{"text":"up"}';
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Echo", headers: {
      "content-type": "application/json", connection: "Upgrade, HTTP2-Settings", upgrade: "h2c", "http2-settings": "AAMAAABkAARAAAAAAAIAAAAA",
    }, body }));
    await c.until((st) => st.data.length >= 12, 15000, "a status line");
    assert.match(c.data.toString("latin1"), /^HTTP\/1\.1 (101|200) /);
    c.sock.destroy();
  });

  it("Upgrade: h2c with an HTTP2-Settings value that is not base64url → 400", async () => {
    const c = await rawConnect(envd.port);
    c.sock.write(h1Bytes({ method: "GET", path: "/health", headers: {
      connection: "Upgrade, HTTP2-Settings", upgrade: "h2c", "http2-settings": "!!not base64!!",
    } }));
    await c.waitClosed(5000);
    assert.equal(parseH1Responses(c.data, { closed: true }).responses[0]?.status, 400);
  });
});

describe("client disconnects cancel handlers, not the server", () => {
  async function expectCancelled(before) {
    await waitFor(async () => {
      const s = await stats(envd.port);
      return s.cancelled >= before.cancelled + 1 && s.running <= before.running;
    }, { timeoutMs: 15000, what: "Stats.cancelled + 1 and running back to its baseline" });
  }

  it("HTTP/1.1 unary Sleep: socket closed while waiting", async () => {
    const before = await stats(envd.port);
    const c = await rawConnect(envd.port);
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Sleep", headers: { "content-type": "application/json" }, body: '{"ms":20000}' }));
    await waitFor(async () => (await stats(envd.port)).running > before.running, { what: "Sleep running" });
    c.sock.destroy();
    await expectCancelled(before);
  });

  it("HTTP/1.1 Connect stream Ticks: socket closed after the first message", async () => {
    const before = await stats(envd.port);
    const c = await rawConnect(envd.port);
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Ticks", headers: { "content-type": "application/connect+json" }, body: envelope(0, '{"count":1000,"intervalMs":20}') }));
    await c.until((st) => st.data.includes("\r\n\r\n") && st.data.length > 200, 15000, "first messages");
    c.sock.destroy();
    await expectCancelled(before);
  });

  it("h2 stream reset (RST_STREAM CANCEL) of a Ticks stream; the session stays usable", async () => {
    const before = await stats(envd.port);
    const s = await h2Connect(envd.port);
    try {
      const req = s.request({ ":method": "POST", ":path": "/envdtest.Echo/Ticks", "content-type": "application/connect+json" });
      req.end(envelope(0, '{"count":1000,"intervalMs":20}'));
      await new Promise((resolve, reject) => { req.once("data", resolve); req.once("error", reject); });
      req.close(http2.constants.NGHTTP2_CANCEL);
      await expectCancelled(before);
      const r = await h2Request(s, { path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json" }, body: '{"text":"same session"}' });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { text: "same session" });
    } finally {
      s.close();
    }
  });

  it("h2 connection dropped during a gRPC Sleep", async () => {
    const before = await stats(envd.port);
    const s = await h2Connect(envd.port);
    const req = s.request({ ":method": "POST", ":path": "/envdtest.Echo/Sleep", "content-type": "application/grpc", te: "trailers" });
    req.on("error", () => {});
    req.end(envelope(0, encode("envdtest.SleepRequest", { ms: 20000 })));
    await waitFor(async () => (await stats(envd.port)).running > before.running, { what: "Sleep running" });
    s.destroy();
    await expectCancelled(before);
  });

  it("several streams on one h2 connection all cancelled when it drops", async () => {
    const before = await stats(envd.port);
    const s = await h2Connect(envd.port);
    for (let i = 0; i < 5; i++) {
      const req = s.request({ ":method": "POST", ":path": "/envdtest.Echo/Sleep", "content-type": "application/json" });
      req.on("error", () => {});
      req.end('{"ms":20000}');
    }
    await waitFor(async () => (await stats(envd.port)).running >= before.running + 5, { what: "5 Sleeps running" });
    s.destroy();
    await waitFor(async () => {
      const st = await stats(envd.port);
      return st.cancelled >= before.cancelled + 5 && st.running <= before.running;
    }, { what: "5 handlers cancelled" });
  });
});

describe("HTTP/2 streams and flow control", () => {
  it("a slow reader slows the writer (server stream is not buffered whole)", async () => {
    // 64 × 64 KiB ticks (≈ 5.5 MB as JSON). The client stops reading for 1 s after the first
    // message; with HTTP/2 flow control the server cannot send (or produce far ahead of) the rest
    // until the client reads again, so the last tick's sent_at_ms is after the pause.
    const s = await h2Connect(envd.port, { settings: { initialWindowSize: 65535 } });
    try {
      const req = s.request({ ":method": "POST", ":path": "/envdtest.Echo/Ticks", "content-type": "application/connect+json" });
      req.end(envelope(0, JSON.stringify({ count: 64, payloadSize: 65536 })));
      const chunks = [];
      await new Promise((resolve, reject) => { req.once("data", (d) => { chunks.push(d); resolve(); }); req.once("error", reject); });
      req.pause();
      await delay(1000);
      const resumedAt = Date.now();
      req.on("data", (d) => chunks.push(d));
      req.resume();
      await withTimeout(new Promise((resolve, reject) => { req.on("end", resolve); req.on("error", reject); }), 15000, "reading the stream");
      const { messages, end } = parseConnectStream(Buffer.concat(chunks));
      assert.deepEqual(end, {});
      assert.equal(messages.length, 64);
      const lastSent = Number(messages[63].sentAtMs);
      assert.ok(lastSent >= resumedAt - 100, `last tick sent ${resumedAt - lastSent} ms before the reader resumed: the server buffered the stream`);
    } finally {
      s.close();
    }
  });

  // connect-node, grpc-js and curl often send the request body's END_STREAM in a separate, empty
  // DATA frame. Responses that do not wait for the end of the body (errors, server streams) must
  // still arrive whole: HEADERS, DATA, and the Connect end frame.
  it("END_STREAM in a separate DATA frame: error responses and stream end frames still arrive", async () => {
    const s = await h2Connect(envd.port);
    const split = (path, ct, body) => new Promise((resolve, reject) => {
      const req = s.request({ ":method": "POST", ":path": path, "content-type": ct }, { endStream: false });
      let status;
      const chunks = [];
      const t = setTimeout(() => { req.close(http2.constants.NGHTTP2_CANCEL); reject(new Error(`${path}: no complete response within 5 s`)); }, 5000);
      req.on("response", (h) => { status = h[":status"]; });
      req.on("data", (d) => chunks.push(d));
      req.on("error", (e) => { clearTimeout(t); reject(e); });
      req.on("close", () => { clearTimeout(t); resolve({ status, body: Buffer.concat(chunks), rstCode: req.rstCode }); });
      req.write(body);
      setTimeout(() => req.end(), 30);
    });
    try {
      const cases = [
        ["/envdtest.Echo/Echo", "text/plain", "{}", (r) => assert.equal(r.status, 415)],
        ["/nope.Nope/Nothing", "application/json", "{}", (r) => assert.equal(r.status, 404)],
        ["/envdtest.Echo/Unimplemented", "application/json", "{}", (r) => {
          assert.equal(r.status, 501);
          assert.equal(JSON.parse(r.body).code, "unimplemented");
        }],
        ["/envdtest.Echo/Ticks", "application/connect+json", envelope(0, '{"count":2}'), (r) => {
          assert.equal(r.status, 200);
          const p = parseConnectStream(r.body);
          assert.equal(p.messages.length, 2);
          assert.deepEqual(p.end, {}, "end frame present");
        }],
        ["/envdtest.Echo/Ticks", "application/connect+json", envelope(0, '{"count":1,"failCode":"aborted"}'), (r) => {
          assert.equal(r.status, 200);
          assert.equal(parseConnectStream(r.body).end?.error?.code, "aborted", "error end frame present");
        }],
      ];
      for (const [path, ct, body, check] of cases) {
        const r = await split(path, ct, body);
        assert.ok(r.status !== undefined, `${path} (${ct}): stream closed (RST code ${r.rstCode}) without a response`);
        check(r);
      }
    } finally {
      s.close();
    }
  });

  it("100 concurrent streams on one connection", async () => {
    const s = await h2Connect(envd.port);
    try {
      const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => h2Request(s, {
        path: "/envdtest.Echo/Echo", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: `s${i}` }),
      })));
      rs.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.deepEqual(JSON.parse(r.body), { text: `s${i}` });
      });
    } finally {
      s.close();
    }
  });
});

describe("small limits (--max-message-bytes 1024 --max-header-bytes 8192)", () => {
  let small;
  before(async () => { small = await startEnvd({ maxMessageBytes: 1024, extraArgs: ["--max-header-bytes", "8192"] }); });
  after(async () => {
    const alive = small?.alive();
    await small?.stop();
    assert.ok(alive !== false, `envd (small limit) died:\n${small?.tail()}`);
  });
  const spost = (path, ct, body, headers = {}) => h1Request(small.port, { path, headers: { "content-type": ct, ...headers }, body });

  it("unary JSON over the limit → 429 resource_exhausted; under it → 200", async () => {
    const r = await spost("/envdtest.Echo/Echo", "application/json", JSON.stringify({ text: "x".repeat(2000) }));
    assert.equal(r.status, 429, r.body.toString());
    assert.equal(jsonOf(r).code, "resource_exhausted");
    const ok = await spost("/envdtest.Echo/Echo", "application/json", JSON.stringify({ text: "x".repeat(900) }));
    assert.equal(ok.status, 200);
  });

  it("unary proto over the limit → 429 resource_exhausted", async () => {
    const r = await spost("/envdtest.Echo/Echo", "application/proto", encode("envdtest.EchoRequest", { payload: Buffer.alloc(2000) }));
    assert.equal(r.status, 429);
    assert.equal(jsonOf(r).code, "resource_exhausted");
  });

  it("gzip request that inflates past the limit → resource_exhausted", async () => {
    const gz = gzipSync(Buffer.from(JSON.stringify({ text: "a".repeat(100000) })));
    assert.ok(gz.length < 1024);
    const r = await spost("/envdtest.Echo/Echo", "application/json", gz, { "content-encoding": "gzip" });
    assert.equal(r.status, 429, r.body.toString());
    assert.equal(jsonOf(r).code, "resource_exhausted");
  });

  it("Connect stream message over the limit → resource_exhausted end frame", async () => {
    const r = await spost("/envdtest.Echo/Ticks", "application/connect+json", envelope(0, JSON.stringify({ count: 1, failCode: "x".repeat(2000) })));
    assert.equal(r.status, 200);
    assert.equal(parseConnectStream(r.body).end?.error?.code, "resource_exhausted");
  });

  it("gRPC message over the limit → grpc-status 8", async () => {
    const s = await h2Connect(small.port);
    try {
      const r = await h2Request(s, { path: "/envdtest.Echo/Echo", headers: { "content-type": "application/grpc", te: "trailers" }, body: envelope(0, encode("envdtest.EchoRequest", { payload: Buffer.alloc(4000) })) });
      assert.equal(grpcStatus(r), "8");
    } finally {
      s.close();
    }
  });

  it("a large upload is refused before it is all sent", async () => {
    // Announce 10 MB and send only 8 KiB: the server must answer 429 without waiting for the rest.
    const c = await rawConnect(small.port);
    c.sock.on("error", () => {});
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Echo", headers: { "content-type": "application/proto", "content-length": String(10 * 1024 * 1024) } }));
    c.sock.write(Buffer.concat([Buffer.from([0x12, 0x80, 0x80, 0x80, 0x05]), Buffer.alloc(8192, 1)]));
    await c.until((st) => st.data.includes("\r\n\r\n"), 15000, "an early response");
    assert.match(c.data.toString("latin1"), /^HTTP\/1\.1 429/);
    c.sock.destroy();
  });

  it("HTTP/1.1 headers over --max-header-bytes → 431; under it → 204", async () => {
    const c = await rawConnect(small.port);
    c.sock.on("error", () => {});
    c.sock.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20000)}\r\n\r\n`);
    await c.until((st) => st.data.length >= 12, 15000, "a status line");
    assert.match(c.data.toString("latin1"), /^HTTP\/1\.1 431/);
    c.sock.destroy();
    const ok = await h1Request(small.port, { method: "GET", path: "/health", headers: { "x-small": "c".repeat(4000) } });
    assert.equal(ok.status, 204);
  });

  it("HTTP/2 headers over --max-header-bytes → 431 (or stream refused); the session survives", async () => {
    const s = await h2Connect(small.port);
    try {
      let status;
      try {
        status = (await h2Request(s, { method: "GET", path: "/health", headers: { "x-big": "d".repeat(20000) } })).status;
      } catch (e) {
        status = `error: ${e.code ?? e.message}`;
      }
      assert.ok(status === 431 || /REFUSED|PROTOCOL|ENHANCE|RST/i.test(String(status)), `got ${status}`);
      if (!s.destroyed) {
        const r = await h2Request(s, { method: "GET", path: "/health" });
        assert.equal(r.status, 204);
      }
    } finally {
      s.close();
    }
  });

  it("responses are never limited (Ticks with 100 KiB payloads)", async () => {
    const r = await spost("/envdtest.Echo/Ticks", "application/connect+json", envelope(0, '{"count":3,"payloadSize":102400}'));
    assert.equal(r.status, 200);
    const { messages, end } = parseConnectStream(r.body);
    assert.deepEqual(end, {});
    assert.equal(messages.length, 3);
    for (const m of messages) assert.equal(Buffer.from(m.payload, "base64").length, 102400);
  });
});

describe("idle timeout (--idle-timeout-ms 300)", () => {
  let idle;
  let idleFds;
  before(async () => {
    idle = await startEnvd({ idleTimeoutMs: 300 });
    await h1Request(idle.port, { method: "GET", path: "/health" });
    idleFds = await stableFds(idle);
  });
  after(async () => {
    const alive = idle?.alive();
    await idle?.stop();
    assert.ok(alive !== false, `envd (idle timeout) died:\n${idle?.tail()}`);
  });

  it("an idle HTTP/1.1 keep-alive connection is closed", async () => {
    const c = await rawConnect(idle.port);
    c.sock.write(h1Bytes({ method: "GET", path: "/health" }));
    await c.until((st) => parseH1Responses(st.data).responses.length === 1, 10000, "a response");
    const t0 = Date.now();
    await c.waitClosed(5000);
    assert.ok(Date.now() - t0 >= 150, `closed after only ${Date.now() - t0} ms`);
  });

  it("a connection that never sends anything is closed", async () => {
    const c = await rawConnect(idle.port);
    await c.waitClosed(5000);
  });

  it("an idle h2 session is closed", async () => {
    const s = await h2Connect(idle.port);
    s.on("error", () => {});
    const r = await h2Request(s, { method: "GET", path: "/health" });
    assert.equal(r.status, 204);
    await withTimeout(new Promise((resolve) => { if (s.closed) resolve(); else s.once("close", resolve); }), 5000, "idle h2 session close");
  });

  it("a request that takes longer than the idle timeout is not cut", async () => {
    const r = await connectJson(idle.port, "/envdtest.Echo/Sleep", { ms: 1000 });
    assert.equal(r.status, 200);
    const c = await rawConnect(idle.port);
    c.sock.write(h1Bytes({ path: "/envdtest.Echo/Ticks", headers: { "content-type": "application/connect+json" }, body: envelope(0, '{"count":3,"intervalMs":400}') }));
    await c.until((st) => parseH1Responses(st.data).responses.length === 1, 15000, "the whole stream");
    const { messages, end } = parseConnectStream(parseH1Responses(c.data).responses[0].body);
    assert.equal(messages.length, 3);
    assert.deepEqual(end, {});
    c.sock.destroy();
  });

  it("fds return to their start value", async () => {
    await waitFor(() => idle.openFds() === idleFds, { timeoutMs: 15000, what: `fd count back to ${idleFds}` });
  });
});

describe("after all of the above", () => {
  it("the server still answers and Stats shows nothing running", async () => {
    const r = await h1Request(envd.port, { method: "GET", path: "/health" });
    assert.equal(r.status, 204);
    await waitFor(async () => (await stats(envd.port)).running === baselineRunning, { what: `Stats.running back to ${baselineRunning}` });
  });

  it("the daemon's open fd count returns to its baseline", async () => {
    try {
      await waitFor(() => envd.openFds() === baselineFds, { timeoutMs: 15000, intervalMs: 50, what: `fd count ${baselineFds}` });
    } catch (e) {
      assert.fail(`${e.message}: now ${envd.openFds()} fds:\n${envd.fdTargets().join("\n")}`);
    }
  });
});
