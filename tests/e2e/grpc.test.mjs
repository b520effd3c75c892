// @grpc/grpc-js over h2c (insecure) against a real envd; services loaded with proto-loader.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { it, startEnvd, protoDir, stats, waitFor, ERROR_CODES, h2Connect, h2Request, envelope, parseEnvelopes, encode, decode } from "./lib/envd.mjs";

let envd;
let pkg;
let echo, proc, fs, generic;

function unary(client, method, req, options = {}) {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    client[method](req, md, options, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function grpcErr(p) {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail("expected the call to fail");
}

/** Reads a server stream: { messages, status, error }. */
function readStream(call) {
  return new Promise((resolve) => {
    const messages = [];
    let error = null;
    call.on("data", (m) => messages.push(m));
    call.on("error", (e) => { error = e; });
    call.on("status", (status) => resolve({ messages, status, error }));
  });
}

before(async () => {
  envd = await startEnvd();
  const def = protoLoader.loadSync(["envdtest.proto", "process.proto", "filesystem.proto"], {
    includeDirs: [protoDir()],
    keepCase: false,
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  pkg = grpc.loadPackageDefinition(def);
  const addr = `127.0.0.1:${envd.port}`;
  const creds = grpc.credentials.createInsecure();
  // grpc-js refuses received messages over 4 MiB by default; envd never limits responses.
  echo = new pkg.envdtest.Echo(addr, creds, { "grpc.max_receive_message_length": -1 });
  proc = new pkg.process.Process(addr, creds);
  fs = new pkg.filesystem.Filesystem(addr, creds);
  generic = new grpc.Client(addr, creds);
});

after(async () => {
  for (const c of [echo, proc, fs, generic]) c?.close();
  const alive = envd?.alive();
  await envd?.stop();
  assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
});

describe("grpc-js over h2c", () => {
  it("unary Echo round-trips text, bytes and int64", async () => {
    const payload = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const r = await unary(echo, "Echo", { text: "grüß dich", payload, number: "-9007199254740993" });
    assert.equal(r.text, "grüß dich");
    assert.ok(Buffer.from(r.payload).equals(payload));
    assert.equal(r.number, "-9007199254740993");
  });

  it("unary Echo with 4 MiB payload (flow control both ways)", async () => {
    const payload = Buffer.alloc(4 * 1024 * 1024, 7);
    const r = await unary(echo, "Echo", { payload });
    assert.equal(r.payload.length, payload.length);
    assert.ok(r.payload.equals(payload));
  });

  it("100 concurrent unary calls on one connection", async () => {
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => unary(echo, "Echo", { text: `n${i}`, number: String(i) })));
    rs.forEach((r, i) => {
      assert.equal(r.text, `n${i}`);
      assert.equal(r.number, String(i));
    });
  });

  it("server stream Ticks delivers all messages with status OK", async () => {
    const { messages, status, error } = await readStream(echo.Ticks({ count: 6, intervalMs: 10, payloadSize: 100 }));
    assert.equal(error, null, String(error));
    assert.equal(status.code, grpc.status.OK);
    assert.equal(messages.length, 6);
    for (let i = 1; i < 6; i++) assert.equal(messages[i].seq, messages[i - 1].seq + 1);
    for (const m of messages) assert.equal(m.payload.length, 100);
  });

  it("server stream Ticks with fail_code ends with that status after the messages", async () => {
    // grpc-js may drop messages that arrive in the same read as an error status, so the messages
    // are spaced out; the first one must have arrived long before the status.
    const { messages, status } = await readStream(echo.Ticks({ count: 2, intervalMs: 100, failCode: "permission_denied" }));
    assert.ok(messages.length >= 1, `got ${messages.length} messages`);
    assert.equal(messages[0].seq, 0);
    assert.equal(status.code, grpc.status.PERMISSION_DENIED, status.details);
  });

  it("on the wire: messages, then trailers with grpc-status and grpc-message", async () => {
    const s = await h2Connect(envd.port);
    try {
      const r = await h2Request(s, { path: "/envdtest.Echo/Ticks", headers: { "content-type": "application/grpc", te: "trailers" },
        body: envelope(0, encode("envdtest.TicksRequest", { count: 2, payloadSize: 3, failCode: "permission_denied" })) });
      assert.equal(r.status, 200);
      assert.match(r.headers["content-type"], /^application\/grpc/);
      const envs = parseEnvelopes(r.body);
      assert.equal(envs.length, 2, "both messages before the trailers");
      envs.forEach((e, i) => {
        assert.equal(e.flags, 0, "uncompressed: the request did not offer gzip");
        const tick = decode("envdtest.Tick", e.data);
        assert.equal(tick.payload.length, 3);
        if (i > 0) assert.equal(tick.seq, decode("envdtest.Tick", envs[0].data).seq + 1);
      });
      assert.equal(r.trailers["grpc-status"], "7");
      assert.ok(r.trailers["grpc-message"], "grpc-message trailer");
      const ok = await h2Request(s, { path: "/envdtest.Echo/Echo", headers: { "content-type": "application/grpc", te: "trailers" },
        body: envelope(0, encode("envdtest.EchoRequest", { text: "wire" })) });
      assert.equal(ok.trailers["grpc-status"], "0");
      const [msg] = parseEnvelopes(ok.body);
      assert.equal(decode("envdtest.EchoResponse", msg.data).text, "wire");
    } finally {
      s.close();
    }
  });

  it("grpc-timeout header → DEADLINE_EXCEEDED from the server", async () => {
    const s = await h2Connect(envd.port);
    try {
      const t0 = Date.now();
      const r = await h2Request(s, { path: "/envdtest.Echo/Sleep", headers: { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "200m" },
        body: envelope(0, encode("envdtest.SleepRequest", { ms: 60000 })) });
      assert.equal(r.trailers["grpc-status"] ?? r.headers["grpc-status"], "4");
      assert.ok(Date.now() - t0 < 30000, `took ${Date.now() - t0} ms`);  // vs the 60 s Sleep
    } finally {
      s.close();
    }
  });

  it("server stream of 16 × 512 KiB messages", async () => {
    const { messages, status } = await readStream(echo.Ticks({ count: 16, payloadSize: 512 * 1024 }));
    assert.equal(status.code, grpc.status.OK, status.details);
    assert.equal(messages.length, 16);
    for (const m of messages) assert.equal(m.payload.length, 512 * 1024);
  });

  it("client stream Collect counts messages and bytes", async () => {
    const r = await new Promise((resolve, reject) => {
      const call = echo.Collect((err, res) => (err ? reject(err) : resolve(res)));
      for (let i = 0; i < 40; i++) call.write({ text: `m${i}`, payload: Buffer.alloc(1500, i) });
      call.end();
    });
    assert.equal(r.count, "40");
    assert.equal(r.bytes, String(40 * 1500));
  });

  it("client stream Collect with 8 MiB in total", async () => {
    const r = await new Promise((resolve, reject) => {
      const call = echo.Collect((err, res) => (err ? reject(err) : resolve(res)));
      for (let i = 0; i < 32; i++) call.write({ payload: Buffer.alloc(256 * 1024, i) });
      call.end();
    });
    assert.equal(r.count, "32");
    assert.equal(r.bytes, String(32 * 256 * 1024));
  });

  it("Fail maps each code name to its gRPC status number and message", async () => {
    for (const c of ERROR_CODES) {
      const msg = `failed — ${c.name} 100% ✓`;
      const e = await grpcErr(unary(echo, "Fail", { code: c.name, message: msg }));
      assert.equal(e.code, c.grpc, `${c.name}: got ${e.code} (${e.details})`);
      assert.equal(e.details, msg, `message for ${c.name}`);
    }
  });

  it("a deadline shorter than Sleep → DEADLINE_EXCEEDED, handler cancelled", async () => {
    const before = await stats(envd.port);
    const t0 = Date.now();
    const e = await grpcErr(unary(echo, "Sleep", { ms: 60000 }, { deadline: Date.now() + 300 }));
    assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED, e.details);
    assert.ok(Date.now() - t0 < 30000);  // vs the 60 s Sleep
    await waitFor(async () => {
      const s = await stats(envd.port);
      return s.cancelled >= before.cancelled + 1 && s.running <= before.running;
    }, { what: "Sleep handler cancelled" });
  });

  it("a deadline longer than Sleep lets it answer", async () => {
    const r = await unary(echo, "Sleep", { ms: 30 }, { deadline: Date.now() + 5000 });
    assert.ok(r);
  });

  it("cancelling a server stream cancels the handler; the channel stays usable", async () => {
    const before = await stats(envd.port);
    const call = echo.Ticks({ count: 1000, intervalMs: 50 });
    await new Promise((resolve) => call.once("data", resolve));
    const done = readStream(call);
    call.cancel();
    const { status } = await done;
    assert.equal(status.code, grpc.status.CANCELLED);
    await waitFor(async () => {
      const s = await stats(envd.port);
      return s.cancelled >= before.cancelled + 1 && s.running <= before.running;
    }, { what: "Ticks handler cancelled" });
    const r = await unary(echo, "Echo", { text: "after cancel" });
    assert.equal(r.text, "after cancel");
  });

  it("methods without a handler (envdtest.Echo/Unimplemented*) → UNIMPLEMENTED (12)", async () => {
    const e1 = await grpcErr(unary(echo, "Unimplemented", {}));
    assert.equal(e1.code, grpc.status.UNIMPLEMENTED, e1.details);
    const s1 = await readStream(echo.UnimplementedStream({}));
    assert.equal(s1.messages.length, 0);
    assert.equal(s1.status.code, grpc.status.UNIMPLEMENTED, s1.status.details);
  });

  it("unknown method on a known service → UNIMPLEMENTED (12)", async () => {
    const e = await grpcErr(new Promise((resolve, reject) => {
      generic.makeUnaryRequest("/envdtest.Echo/NoSuchMethod", (b) => b, (b) => b, Buffer.alloc(0), (err, res) => (err ? reject(err) : resolve(res)));
    }));
    assert.equal(e.code, grpc.status.UNIMPLEMENTED, e.details);
  });

  it("unknown service → UNIMPLEMENTED (12)", async () => {
    const e = await grpcErr(new Promise((resolve, reject) => {
      generic.makeUnaryRequest("/nope.Nope/Nothing", (b) => b, (b) => b, Buffer.alloc(0), (err, res) => (err ? reject(err) : resolve(res)));
    }));
    assert.equal(e.code, grpc.status.UNIMPLEMENTED, e.details);
  });

  it("a request that is not valid protobuf → INVALID_ARGUMENT or INTERNAL, never OK", async () => {
    // Field 1 (text, length-delimited) promising 100 bytes with 1 present.
    const bad = Buffer.from([0x0a, 0x64, 0x41]);
    const e = await grpcErr(new Promise((resolve, reject) => {
      generic.makeUnaryRequest("/envdtest.Echo/Echo", (b) => b, (b) => b, bad, (err, res) => (err ? reject(err) : resolve(res)));
    }));
    assert.ok([grpc.status.INVALID_ARGUMENT, grpc.status.INTERNAL].includes(e.code), `got ${e.code} ${e.details}`);
  });
});
