// Few-copy response bodies (issue 8): Exchange::write_file sends a file region with sendfile(2)
// over HTTP/1.1 and through pool reads over h2c. Uses the --test-services route
// GET /__test/file?path=&offset=&length=. A 64 MiB file round-trips with its checksum on both,
// regions are exact, a file shorter than promised aborts the response, and clients that go away
// mid-transfer leave no file descriptor behind.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import http from "node:http";
import http2 from "node:http2";
import { startEnvd, h2Connect, HOST, waitFor, it } from "./lib/envd.mjs";

const SIZE = 64 * 1024 * 1024;
const sha = (b) => createHash("sha256").update(b).digest("hex");

/** GET over HTTP/1.1; resolves { status, length, hash, complete } while hashing the stream. */
function h1Get(port, target) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path: target, agent: false }, (res) => {
      const h = createHash("sha256");
      let length = 0;
      res.on("data", (d) => { h.update(d); length += d.length; });
      res.on("end", () => resolve({ status: res.statusCode, length, hash: h.digest("hex"), complete: res.complete }));
      res.on("aborted", () => resolve({ status: res.statusCode, length, hash: null, complete: false }));
      res.on("error", () => resolve({ status: res.statusCode, length, hash: null, complete: false }));
    });
    req.on("error", reject);
  });
}

/** GET over h2c; resolves { status, length, hash, error }. */
function h2Get(session, target) {
  return new Promise((resolve) => {
    const req = session.request({ ":method": "GET", ":path": target });
    const h = createHash("sha256");
    let length = 0;
    let status;
    req.on("response", (hd) => { status = hd[":status"]; });
    req.on("data", (d) => { h.update(d); length += d.length; });
    req.on("end", () => resolve({ status, length, hash: h.digest("hex"), error: null, rstCode: req.rstCode }));
    req.on("error", (e) => resolve({ status, length, hash: null, error: e, rstCode: req.rstCode }));
  });
}

/** POST over HTTP/1.1 (Content-Length, or chunked when `chunked`); resolves { status, json }. */
function h1Post(port, target, body, { chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const headers = chunked ? { "transfer-encoding": "chunked" } : { "content-length": String(body.length) };
    const req = http.request({ host: HOST, port, path: target, method: "POST", agent: false, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { text += d; });
      res.on("end", () => resolve({ status: res.statusCode, json: text.startsWith("{") ? JSON.parse(text) : text }));
    });
    req.on("error", reject);
    // Several writes, so the body arrives in many pieces.
    const step = 1 << 20;
    for (let i = 0; i < body.length; i += step) req.write(body.subarray(i, i + step));
    req.end();
  });
}

function h2Post(session, target, body) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": target, "content-length": String(body.length) });
    let text = "";
    let status;
    req.setEncoding("utf8");
    req.on("response", (h) => { status = h[":status"]; });
    req.on("data", (d) => { text += d; });
    req.on("end", () => resolve({ status, json: text.startsWith("{") ? JSON.parse(text) : text }));
    req.on("error", reject);
    req.end(body);
  });
}

describe("file region bodies", () => {
  let envd;
  let dir;
  let file;
  let data;
  before(async () => {
    envd = await startEnvd();
    dir = mkdtempSync(path.join(tmpdir(), "envd-filebody-"));
    file = path.join(dir, "big file.bin");
    data = randomBytes(SIZE);
    writeFileSync(file, data);
  });
  after(async () => {
    const exit = await envd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal(exit?.code, 0, envd?.tail());
  });

  const target = (extra = "") => `/__test/file?path=${encodeURIComponent(file)}${extra}`;

  it("HTTP/1.1: 64 MiB with sendfile, checksum intact", { timeout: 60000 }, async () => {
    const r = await h1Get(envd.port, target());
    assert.equal(r.status, 200);
    assert.equal(r.length, SIZE);
    assert.equal(r.hash, sha(data));
  });

  it("h2c: 64 MiB through pool reads, checksum intact", { timeout: 60000 }, async () => {
    const s = await h2Connect(envd.port);
    try {
      const r = await h2Get(s, target());
      assert.equal(r.status, 200);
      assert.equal(r.length, SIZE);
      assert.equal(r.hash, sha(data));
    } finally {
      s.close();
    }
  });

  it("regions are exact on both protocols", async () => {
    const want = data.subarray(123457, 123457 + 300001);
    const r1 = await h1Get(envd.port, target("&offset=123457&length=300001"));
    assert.equal(r1.hash, sha(want));
    const s = await h2Connect(envd.port);
    try {
      const r2 = await h2Get(s, target("&offset=123457&length=300001"));
      assert.equal(r2.hash, sha(want));
      const empty = await h2Get(s, target(`&offset=${SIZE}&length=0`));
      assert.equal(empty.status, 200);
      assert.equal(empty.length, 0);
    } finally {
      s.close();
    }
  });

  it("a file shorter than promised aborts the response instead of ending it", async () => {
    const off = SIZE - 1000;
    const r1 = await h1Get(envd.port, target(`&offset=${off}&length=1500`));
    assert.equal(r1.complete, false);
    assert.ok(r1.length <= 1000);
    const s = await h2Connect(envd.port);
    try {
      const r2 = await h2Get(s, target(`&offset=${off}&length=1500`));
      assert.ok(r2.error || r2.rstCode, "the h2 stream is reset");
      assert.notEqual(r2.length, 1500);
    } finally {
      s.close();
    }
    assert.ok(envd.alive());
  });

  it("uploads: 64 MiB written from the receive buffer, HTTP/1.1 (length and chunked) and h2c", { timeout: 60000 }, async () => {
    const out = path.join(dir, "uploaded.bin");
    const up = `/__test/upload?path=${encodeURIComponent(out)}`;
    const r1 = await h1Post(envd.port, up, data);
    assert.equal(r1.status, 200, JSON.stringify(r1.json));
    assert.equal(r1.json.bytes, SIZE);
    assert.equal(sha(readFileSync(out)), sha(data));
    const r2 = await h1Post(envd.port, up, data.subarray(0, 5 * 1024 * 1024 + 7), { chunked: true });
    assert.equal(r2.json.bytes, 5 * 1024 * 1024 + 7);
    assert.equal(sha(readFileSync(out)), sha(data.subarray(0, 5 * 1024 * 1024 + 7)));
    const s = await h2Connect(envd.port);
    try {
      const r3 = await h2Post(s, up, data);
      assert.equal(r3.status, 200, JSON.stringify(r3.json));
      assert.equal(r3.json.bytes, SIZE);
      assert.ok(r3.json.pieces > 1);
      assert.equal(sha(readFileSync(out)), sha(data));
    } finally {
      s.close();
    }
  });

  it("clients that go away mid-transfer leave no descriptor behind", { timeout: 30000 }, async () => {
    const baseline = envd.openFds();
    // HTTP/1.1: read the first bytes, then drop the connection.
    await new Promise((resolve, reject) => {
      const req = http.get({ host: HOST, port: envd.port, path: target(), agent: false }, (res) => {
        res.once("data", () => { req.destroy(); resolve(); });
      });
      req.on("error", () => {});
      req.on("close", resolve);
      setTimeout(() => reject(new Error("no data")), 10000);
    });
    // h2c: cancel the stream after the first bytes, and close the session.
    const s = await h2Connect(envd.port);
    await new Promise((resolve) => {
      const req = s.request({ ":method": "GET", ":path": target() });
      req.on("error", () => {});
      req.once("data", () => { req.close(http2.constants.NGHTTP2_CANCEL); resolve(); });
    });
    s.destroy();
    await waitFor(() => envd.openFds() <= baseline, { timeoutMs: 10000, what: `fds back to ${baseline}` });
    // Still serving.
    const r = await h1Get(envd.port, target("&length=10"));
    assert.equal(r.hash, sha(data.subarray(0, 10)));
  });
});
