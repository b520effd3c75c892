// Bidi streaming (envdtest.Echo/Chat) and Connect GET on the real envd: full duplex over h2c (each
// answer arrives while the request stream is still open), half duplex over HTTP/1.1.
import { before, after, describe } from "node:test";
import assert from "node:assert/strict";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { it, startEnvd, protoDir, h1Request, h2Connect, envelope, parseConnectStream, encode, decode, withTimeout } from "./lib/envd.mjs";

let envd;
let echo;

before(async () => {
  envd = await startEnvd();
  const def = protoLoader.loadSync(["envdtest.proto"], { includeDirs: [protoDir()], longs: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def);
  echo = new pkg.envdtest.Echo(`127.0.0.1:${envd.port}`, grpc.credentials.createInsecure());
});

after(async () => {
  echo?.close();
  await envd?.stop();
});

/** The next `data` event of a readable, as a promise. */
const nextData = (stream, what) =>
  withTimeout(new Promise((resolve, reject) => {
    stream.once("data", resolve);
    stream.once("error", reject);
  }), 5000, what);

describe("bidi streaming", () => {
  it("gRPC over h2c is full duplex: each answer arrives before the next message is sent", async () => {
    const call = echo.chat();
    const statusP = new Promise((resolve) => call.on("status", resolve));
    for (const text of ["one", "two", "three"]) {
      const answer = nextData(call, `the answer to ${text}`);
      call.write({ text });
      assert.equal((await answer).text, text);
    }
    call.end();
    assert.equal((await statusP).code, grpc.status.OK);
  });

  it("gRPC: an error after an answer ends the stream with its status", async () => {
    const call = echo.chat();
    const got = [];
    call.on("data", (m) => got.push(m.text));
    const done = new Promise((resolve) => call.on("error", resolve));
    call.write({ text: "a" });
    call.write({ text: "fail" });
    const err = await withTimeout(done, 15000, "the error");
    assert.equal(err.code, grpc.status.ABORTED);
    assert.deepEqual(got, ["a"]);
  });

  it("Connect over h2c is full duplex: an answer arrives while the request stream is open", async () => {
    const session = await h2Connect(envd.port);
    try {
      const req = session.request({ ":method": "POST", ":path": "/envdtest.Echo/Chat", "content-type": "application/connect+json" });
      const chunks = [];
      let wake = null;
      req.on("data", (c) => { chunks.push(c); wake?.(); });
      const waitBytes = (n) => withTimeout(new Promise((resolve) => {
        const check = () => (Buffer.concat(chunks).length >= n ? resolve() : (wake = check));
        check();
      }), 5000, `${n} response bytes`);
      const ended = new Promise((resolve) => req.on("end", resolve));
      req.write(envelope(0, '{"text":"x"}'));
      await waitBytes(5 + '{"text":"x"}'.length);  // the answer, with our request still open
      req.write(envelope(0, '{"text":"y"}'));
      req.end(envelope(2, "{}"));
      await withTimeout(ended, 15000, "the end of the response");
      const { messages, end } = parseConnectStream(Buffer.concat(chunks));
      assert.deepEqual(messages, [{ text: "x" }, { text: "y" }]);
      assert.deepEqual(end, {});
    } finally {
      session.close();
    }
  });

  it("Connect over HTTP/1.1 is half duplex: the whole request, then every answer", async () => {
    const body = Buffer.concat([envelope(0, encode("envdtest.EchoRequest", { text: "p" })), envelope(0, encode("envdtest.EchoRequest", { text: "q" }))]);
    const r = await h1Request(envd.port, { path: "/envdtest.Echo/Chat", headers: { "content-type": "application/connect+proto" }, body: [body] });
    assert.equal(r.status, 200);
    const { messages, end } = parseConnectStream(r.body, { json: false });
    assert.deepEqual(messages.map((m) => decode("envdtest.EchoResponse", m).text), ["p", "q"]);
    assert.deepEqual(end, {});
  });
});

describe("Connect GET", () => {
  it("a NO_SIDE_EFFECTS method answers GET with the message in the query (JSON and base64 proto)", async () => {
    const json = await h1Request(envd.port, { method: "GET", path: `/envdtest.Echo/Echo?connect=v1&encoding=json&message=${encodeURIComponent('{"text":"get"}')}` });
    assert.equal(json.status, 200);
    assert.equal(json.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(json.body), { text: "get" });

    const b64 = encode("envdtest.EchoRequest", { text: "proto get" }).toString("base64url");
    const proto = await h1Request(envd.port, { method: "GET", path: `/envdtest.Echo/Echo?encoding=proto&base64=1&message=${b64}` });
    assert.equal(proto.status, 200);
    assert.equal(decode("envdtest.EchoResponse", proto.body).text, "proto get");
  });

  it("other methods refuse GET with 405", async () => {
    const r = await h1Request(envd.port, { method: "GET", path: `/envdtest.Echo/Fail?encoding=json&message=${encodeURIComponent("{}")}` });
    assert.equal(r.status, 405);
  });
});
