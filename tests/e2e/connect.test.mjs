// connect-node clients (Connect JSON/binary, gRPC-Web, gRPC) against a real envd, over HTTP/1.1
// and h2c. Services are loaded at run time from the descriptor set: no generated code.
import { describe, before, after } from "node:test";
import net from "node:net";
import assert from "node:assert/strict";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcWebTransport,
  createGrpcTransport,
  compressionGzip,
} from "@connectrpc/connect-node";
import {
  it, startEnvd, service, stats, waitFor, ERROR_CODES, encode, decode, envelope, parseEnvelopes, parseGrpcWebTrailers,
  h1Request, h2Connect, h2Request,
} from "./lib/envd.mjs";

// Every Connect code name the Fail RPC accepts, and the connect-es Code it must map to
// (connect-es Code values are the gRPC numbers).
const CODES = ERROR_CODES.map((c) => [c.name, c.grpc]);

/** Awaits `p` and returns the ConnectError it rejects with (fails if it resolves). */
async function connectErr(p) {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("expected the call to fail");
}

/** Drains a server stream into an array, returning { messages, error }. */
async function drain(stream) {
  const messages = [];
  try {
    for await (const m of stream) messages.push(m);
    return { messages, error: null };
  } catch (e) {
    return { messages, error: ConnectError.from(e) };
  }
}

async function* collectInput(n, size) {
  for (let i = 0; i < n; i++) yield { text: `m${i}`, payload: new Uint8Array(size).fill(i & 0xff) };
}

function bytesOf(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

let envd;
let Echo, Process, Filesystem;

before(async () => {
  envd = await startEnvd();
  Echo = service("envdtest.Echo");
  Process = service("process.Process");
  Filesystem = service("filesystem.Filesystem");
});

after(async () => {
  const alive = envd?.alive();
  await envd?.stop();
  assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
});

const VARIANTS = [
  { name: "connect json http/1.1", make: (b) => createConnectTransport({ baseUrl: b, httpVersion: "1.1", useBinaryFormat: false }), h2: false },
  { name: "connect proto http/1.1", make: (b) => createConnectTransport({ baseUrl: b, httpVersion: "1.1", useBinaryFormat: true }), h2: false },
  { name: "connect json h2c", make: (b) => createConnectTransport({ baseUrl: b, httpVersion: "2", useBinaryFormat: false }), h2: true },
  { name: "connect proto h2c", make: (b) => createConnectTransport({ baseUrl: b, httpVersion: "2", useBinaryFormat: true }), h2: true },
  { name: "grpc-web proto http/1.1", make: (b) => createGrpcWebTransport({ baseUrl: b, httpVersion: "1.1", useBinaryFormat: true }), h2: false },
  { name: "grpc-web json http/1.1", make: (b) => createGrpcWebTransport({ baseUrl: b, httpVersion: "1.1", useBinaryFormat: false }), h2: false },
  { name: "grpc-web proto h2c", make: (b) => createGrpcWebTransport({ baseUrl: b, httpVersion: "2", useBinaryFormat: true }), h2: true },
  { name: "grpc-web json h2c", make: (b) => createGrpcWebTransport({ baseUrl: b, httpVersion: "2", useBinaryFormat: false }), h2: true },
  { name: "grpc proto h2c", make: (b) => createGrpcTransport({ baseUrl: b, useBinaryFormat: true }), h2: true },
  { name: "grpc json h2c", make: (b) => createGrpcTransport({ baseUrl: b, useBinaryFormat: false }), h2: true },
];

for (const v of VARIANTS) {
  describe(v.name, () => {
    let echo, proc, fs;
    before(() => {
      const t = v.make(envd.baseUrl);
      echo = createClient(Echo, t);
      proc = createClient(Process, t);
      fs = createClient(Filesystem, t);
    });

    it("Echo round-trips text, bytes and int64 beyond 2^53", async () => {
      const payload = bytesOf(256);
      const r = await echo.echo({ text: "héllo ✓ \u0000 \"quoted\"", payload, number: 9007199254740993n });
      assert.equal(r.text, "héllo ✓ \u0000 \"quoted\"");
      assert.deepEqual(Buffer.from(r.payload), Buffer.from(payload));
      assert.equal(r.number, 9007199254740993n);
      const neg = await echo.echo({ number: -9223372036854775808n });
      assert.equal(neg.number, -9223372036854775808n);
      assert.equal(neg.text, "");
      assert.equal(neg.payload.length, 0);
    });

    it("Echo of an empty message answers an empty message", async () => {
      const r = await echo.echo({});
      assert.equal(r.text, "");
      assert.equal(r.number, 0n);
      assert.equal(r.payload.length, 0);
    });

    it("Echo with a 1 MiB payload", async () => {
      const payload = bytesOf(1 << 20);
      const r = await echo.echo({ payload });
      assert.equal(r.payload.length, payload.length);
      assert.ok(Buffer.from(r.payload).equals(Buffer.from(payload)));
    });

    it("methods without a handler (envdtest.Echo/Unimplemented*) answer unimplemented", async () => {
      const e1 = await connectErr(echo.unimplemented({}));
      assert.equal(e1.code, Code.Unimplemented, e1.message);
      // Server-streaming methods: the error arrives at the end of the stream.
      const s1 = await drain(echo.unimplementedStream({}));
      assert.equal(s1.messages.length, 0);
      assert.equal(s1.error?.code, Code.Unimplemented, String(s1.error));
    });

    it("Fail maps every code name to its code, with the message intact", async () => {
      for (const [name, code] of CODES) {
        const msg = `boom ${name} ✓`;
        const e = await connectErr(echo.fail({ code: name, message: msg }));
        assert.equal(e.code, code, `code ${name}: got ${Code[e.code]} (${e.message})`);
        assert.equal(e.rawMessage, msg, `message for ${name}`);
      }
    });

    it("Ticks streams every message, then ends cleanly", async () => {
      const { messages, error } = await drain(echo.ticks({ count: 7, intervalMs: 0, payloadSize: 333 }));
      assert.equal(error, null, String(error));
      assert.equal(messages.length, 7);
      for (let i = 0; i < messages.length; i++) {
        assert.equal(messages[i].payload.length, 333);
        if (i > 0) assert.equal(messages[i].seq, messages[i - 1].seq + 1, "seq must increase by one");
        assert.ok(messages[i].sentAtMs > 1600000000000n, "sent_at_ms is a wall clock in ms");
      }
    });

    it("Ticks with count 0 ends without messages", async () => {
      const { messages, error } = await drain(echo.ticks({ count: 0 }));
      assert.equal(error, null, String(error));
      assert.equal(messages.length, 0);
    });

    it("Ticks with fail_code delivers the messages, then the error", async () => {
      const { messages, error } = await drain(echo.ticks({ count: 3, payloadSize: 10, failCode: "not_found" }));
      assert.equal(messages.length, 3);
      assert.ok(error, "stream must end with an error");
      assert.equal(error.code, Code.NotFound, error.message);
    });

    it("Ticks with large messages (8 × 256 KiB)", async () => {
      const { messages, error } = await drain(echo.ticks({ count: 8, payloadSize: 256 * 1024 }));
      assert.equal(error, null, String(error));
      assert.equal(messages.length, 8);
      for (const m of messages) assert.equal(m.payload.length, 256 * 1024);
    });

    // connect-node streams the request body with chunked encoding over HTTP/1.1, so client
    // streaming works there too (envd must accept chunked request bodies).
    {
      it(`Collect counts client-streamed messages and bytes${v.h2 ? "" : " (HTTP/1.1 chunked body)"}`, async () => {
        const r = await echo.collect(collectInput(25, 1000));
        assert.equal(r.count, 25n);
        assert.equal(r.bytes, 25000n);
        const empty = await echo.collect(collectInput(0, 0));
        assert.equal(empty.count, 0n);
        assert.equal(empty.bytes, 0n);
      });
    }

    it("a deadline shorter than Sleep ends in deadline_exceeded and cancels the handler", async () => {
      const before = await stats(envd.port);
      const t0 = Date.now();
      const e = await connectErr(echo.sleep({ ms: 60000 }, { timeoutMs: 300 }));
      assert.equal(e.code, Code.DeadlineExceeded, e.message);
      assert.ok(Date.now() - t0 < 30000, `took ${Date.now() - t0} ms`);  // vs the 60 s Sleep
      await waitFor(async () => {
        const s = await stats(envd.port);
        return s.cancelled >= before.cancelled + 1 && s.running <= before.running;
      }, { what: "Sleep handler to be cancelled (Stats.cancelled + 1, running back)" });
    });

    it("a deadline longer than Sleep lets it answer", async () => {
      const r = await echo.sleep({ ms: 50 }, { timeoutMs: 15000 });
      assert.ok(r);
    });

    it("unary calls run concurrently", async () => {
      // 10 long Sleeps in parallel: all 10 handlers run at once (envd's own count), then the
      // client gives up on them. No clock: serialised calls would never reach 10 running.
      const before = await stats(envd.port);
      const abort = new AbortController();
      const calls = Array.from({ length: 10 }, () => echo.sleep({ ms: 60000 }, { signal: abort.signal }).catch((e) => ConnectError.from(e)));
      await waitFor(async () => (await stats(envd.port)).running >= before.running + 10, { what: "10 Sleep handlers running at once" });
      abort.abort();
      for (const e of await Promise.all(calls)) assert.equal(e.code, Code.Canceled, e.message);
      await waitFor(async () => (await stats(envd.port)).running <= before.running, { what: "the Sleep handlers to be cancelled" });
    });
  });
}

// gzip in both directions, observed through the response headers.
const GZIP_VARIANTS = [
  { name: "connect json http/1.1", httpVersion: "1.1", binary: false },
  { name: "connect proto http/1.1", httpVersion: "1.1", binary: true },
  { name: "connect json h2c", httpVersion: "2", binary: false },
  { name: "connect proto h2c", httpVersion: "2", binary: true },
];
for (const v of GZIP_VARIANTS) {
  describe(`gzip, ${v.name}`, () => {
    let echo;
    before(() => {
      echo = createClient(Echo, createConnectTransport({
        baseUrl: envd.baseUrl,
        httpVersion: v.httpVersion,
        useBinaryFormat: v.binary,
        sendCompression: compressionGzip,
        acceptCompression: [compressionGzip],
        compressMinBytes: 0,
      }));
    });

    it("unary: gzip request accepted, response gzip-encoded", async () => {
      const payload = new Uint8Array(64 * 1024).fill(65);
      let hdr;
      const r = await echo.echo({ text: "zip".repeat(1000), payload, number: 5n }, { onHeader: (h) => { hdr = h; } });
      assert.equal(r.text, "zip".repeat(1000));
      assert.equal(r.payload.length, payload.length);
      assert.equal(r.number, 5n);
      assert.equal(hdr?.get("content-encoding"), "gzip", "response must be gzip when Accept-Encoding: gzip is sent");
    });

    it("unary error with gzip negotiated still decodes", async () => {
      const e = await connectErr(echo.fail({ code: "already_exists", message: "exists" }));
      assert.equal(e.code, Code.AlreadyExists);
      assert.equal(e.rawMessage, "exists");
    });

    it("server stream: messages gzip-compressed (Connect-Content-Encoding: gzip)", async () => {
      let hdr;
      const got = [];
      for await (const m of echo.ticks({ count: 4, payloadSize: 4096 }, { onHeader: (h) => { hdr = h; } })) got.push(m);
      assert.equal(got.length, 4);
      for (const m of got) assert.equal(m.payload.length, 4096);
      assert.equal(hdr?.get("connect-content-encoding"), "gzip");
    });

    if (v.httpVersion === "2") {
      it("client stream with gzip-compressed messages", async () => {
        const r = await echo.collect(collectInput(10, 5000));
        assert.equal(r.count, 10n);
        assert.equal(r.bytes, 50000n);
      });
    }
  });
}

// A streamed response must reach the client message by message, not all at the end.
const STREAM_VARIANTS = [
  { name: "connect json http/1.1", make: (b) => createConnectTransport({ baseUrl: b, httpVersion: "1.1" }) },
  { name: "connect proto h2c", make: (b) => createConnectTransport({ baseUrl: b, httpVersion: "2", useBinaryFormat: true }) },
  { name: "grpc-web proto http/1.1", make: (b) => createGrpcWebTransport({ baseUrl: b, httpVersion: "1.1" }) },
  { name: "grpc proto h2c", make: (b) => createGrpcTransport({ baseUrl: b }) },
];
describe("streamed messages arrive one by one", () => {
  // Each message is on the wire before anything follows it: the handler sends `count` messages,
  // then holds the stream open (no more messages, no end) until the client goes away, so the last
  // message can only arrive if it was sent on its own. No clock is involved.
  for (const v of STREAM_VARIANTS) {
    // A transport that held messages back would wait forever: the timeout says so.
    it(v.name, { timeout: 60000 }, async () => {
      const echo = createClient(Echo, v.make(envd.baseUrl));
      for (const count of [1, 5]) {
        const abort = new AbortController();
        const seqs = [];
        const e = await connectErr((async () => {
          for await (const m of echo.ticks({ count, payloadSize: 16, hold: true }, { signal: abort.signal })) {
            seqs.push(m.seq);
            if (seqs.length === count) abort.abort();
          }
        })());
        assert.equal(e.code, Code.Canceled, e.message);
        assert.deepEqual(seqs, [...Array(count).keys()]);
      }
    });
  }
});

describe("client-side cancellation", () => {
  for (const httpVersion of ["2", "1.1"]) {
    it(`aborting a server stream cancels the handler; the connection stays usable (HTTP/${httpVersion})`, async () => {
      const echo = createClient(Echo, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion }));
      const before = await stats(envd.port);
      const ac = new AbortController();
      let n = 0;
      const e = await connectErr((async () => {
        for await (const _ of echo.ticks({ count: 1000, intervalMs: 50 }, { signal: ac.signal })) {
          if (++n === 2) ac.abort();
        }
      })());
      assert.equal(e.code, Code.Canceled);
      await waitFor(async () => {
        const s = await stats(envd.port);
        return s.cancelled >= before.cancelled + 1 && s.running <= before.running;
      }, { what: "Ticks handler to be cancelled" });
      const r = await echo.echo({ text: "still here" });
      assert.equal(r.text, "still here");
    });
  }
});

describe("gRPC-Web text (application/grpc-web-text: base64 bodies)", () => {
  // A body is a run of padded base64 segments; decode group by group.
  const unbase64 = (text) => {
    const groups = text.replace(/\s/g, "").match(/.{1,4}/g) ?? [];
    return Buffer.concat(groups.map((g) => Buffer.from(g, "base64")));
  };
  const textHeaders = { "content-type": "application/grpc-web-text", "x-grpc-web": "1" };
  const frames = (body) => {
    const envs = parseEnvelopes(unbase64(body.toString("latin1")));
    const trailer = envs.at(-1);
    assert.equal(trailer.flags & 0x80, 0x80, "the last frame carries the trailers");
    return { data: envs.slice(0, -1).map((e) => e.data), trailers: parseGrpcWebTrailers(trailer.data) };
  };

  it("unary over HTTP/1.1, the request split into two padded segments sent in pieces", async () => {
    const req = envelope(0, encode("envdtest.EchoRequest", { text: "hello, text" }));
    const b64 = req.subarray(0, 4).toString("base64") + req.subarray(4).toString("base64");
    assert.match(b64, /=.+/, "a padded segment in the middle");
    const r = await h1Request(envd.port, { path: "/envdtest.Echo/Echo", headers: textHeaders, body: [b64.slice(0, 3), b64.slice(3)] });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "application/grpc-web-text");
    const f = frames(r.body);
    assert.equal(f.trailers["grpc-status"], "0");
    assert.equal(f.data.length, 1);
    assert.equal(decode("envdtest.EchoResponse", f.data[0]).text, "hello, text");
  });

  it("server stream over h2c: one base64 segment per message, then the trailers", async () => {
    const session = await h2Connect(envd.port);
    try {
      const body = envelope(0, encode("envdtest.TicksRequest", { count: 3, payloadSize: 5 })).toString("base64");
      const r = await h2Request(session, { path: "/envdtest.Echo/Ticks", headers: textHeaders, body });
      assert.equal(r.status, 200);
      const f = frames(r.body);
      assert.equal(f.trailers["grpc-status"], "0");
      assert.deepEqual(f.data.map((d) => decode("envdtest.Tick", d).seq), [0, 1, 2]);
    } finally {
      session.close();
    }
  });

  it("invalid base64 and a truncated group are invalid_argument", async () => {
    for (const body of ["AAAA!AAA", "AAAAAAQ"]) {
      const r = await h1Request(envd.port, { path: "/envdtest.Echo/Echo", headers: textHeaders, body });
      assert.equal(r.status, 200);
      // An error before any message is a trailers-only response (as connect-go): the status is in
      // the headers and the body is empty.
      assert.equal(r.body.length, 0);
      assert.equal(r.headers["grpc-status"], "3", body);
      assert.match(decodeURIComponent(r.headers["grpc-message"]), /base64/);
    }
  });
});

describe("a whole unary answer is one write (HTTP/1.1)", () => {
  // A client whose own deadline falls between a head and its body sees a Connect error without
  // its JSON (the conformance suite's Timeouts cases, once under load): the head and the body of
  // a unary answer go out in one write, so the first bytes read are the whole response.
  const ticks = (msg) => envelope(0, JSON.stringify(msg)).toString("latin1");
  for (const [what, path, body, timeout, type = "application/json"] of [
    ["deadline_exceeded (server-side Connect-Timeout-Ms)", "/envdtest.Echo/Sleep", '{"ms":5000}', "100"],
    ["an error answer", "/envdtest.Echo/Fail", '{"code":"not_found","message":"gone"}', undefined],
    ["a success answer", "/envdtest.Echo/Echo", '{"text":"hello"}', undefined],
    // A stream that ends before its first message: head and end frame together.
    ["a Connect stream that fails before its first message", "/envdtest.Echo/Ticks", ticks({ count: 0, failCode: "not_found" }), undefined, "application/connect+json"],
  ]) {
    it(what, async () => {
      const sock = net.connect(envd.port, "127.0.0.1");
      try {
        await new Promise((r, j) => { sock.once("connect", r); sock.once("error", j); });
        const first = new Promise((r, j) => { sock.once("data", r); sock.once("error", j); });
        const headers = [`POST ${path} HTTP/1.1`, "Host: x", `Content-Type: ${type}`, `Content-Length: ${body.length}`];
        if (timeout) headers.push(`Connect-Timeout-Ms: ${timeout}`);
        sock.write(Buffer.from(headers.join("\r\n") + "\r\n\r\n" + body, "latin1"));
        const chunk = (await first).toString("latin1");
        const split = chunk.indexOf("\r\n\r\n");
        assert.ok(split > 0, chunk);
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(chunk)?.[1]);
        assert.ok(length > 0, chunk);
        assert.equal(chunk.length - split - 4, length, `the first read held only part of the answer: ${JSON.stringify(chunk)}`);
        const rest = Buffer.from(chunk.slice(split + 4), "latin1");
        const json = type === "application/json" ? JSON.parse(rest) : JSON.parse(parseEnvelopes(rest).at(-1).data).error;
        assert.equal(json.code, timeout ? "deadline_exceeded" : path.endsWith("/Echo") ? undefined : "not_found");
      } finally {
        sock.destroy();
      }
    });
  }
});
