// GET /files (contract §2.1–2.3, §3.2, §6.5) against a real envd, with curl (HTTP/1.1 and h2c
// prior knowledge), node:http/http2 and raw sockets: headers as Go's http.ServeContent sends them
// (Content-Length 0 for empty files, Content-Disposition quoting, Content-Type by the raw path's
// extension else sniffed), Range (single, multiple, suffix, 416), conditional requests on our
// strong ETag and on Last-Modified (304, 412, If-Range), Accept-Encoding (406 rules, gzip with a
// weak ETag), the error order and texts, signed URLs with a token set, clients that go away in
// the middle of a download (no fd left open), and 64 MiB checksums.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, mkdirSync, symlinkSync, rmSync, truncateSync, utimesSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { startEnvd, h1Request, h2Connect, h2Request, rawConnect, parseH1Responses, waitFor, it } from "./lib/envd.mjs";
import { curl } from "./lib/clients.mjs";

/** curl writing the body through sha256: { status, sha256, size }. */
function curlDigest(url, args = []) {
  return new Promise((resolve, reject) => {
    const p = spawn("curl", ["-sS", "--max-time", "120", "-w", "%{http_code}", ...args, url], { stdio: ["ignore", "pipe", "pipe"] });
    const h = createHash("sha256");
    let tail = Buffer.alloc(0);
    let size = 0;
    let err = "";
    // The last 3 bytes are the -w status code.
    p.stdout.on("data", (d) => {
      const all = Buffer.concat([tail, d]);
      const keep = Math.min(3, all.length);
      const body = all.subarray(0, all.length - keep);
      h.update(body);
      size += body.length;
      tail = Buffer.from(all.subarray(all.length - keep));
    });
    p.stderr.on("data", (d) => { err += d; });
    p.on("close", (code) => {
      if (code !== 0) return reject(new Error(`curl exited ${code}: ${err}`));
      resolve({ status: Number(tail.toString()), sha256: h.digest("hex"), size });
    });
  });
}

const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const q = (params) => "/files?" + new URLSearchParams(params).toString();
const jsonErr = (code, message) => `{"code":${code},"message":${JSON.stringify(message)}}\n`;

/** The §2.2 signature as both SDKs compute it (sandbox/signature.ts). */
function signature(path, operation, user, token, expiration) {
  const raw = expiration === undefined ? `${path}:${operation}:${user ?? ""}:${token}` : `${path}:${operation}:${user ?? ""}:${token}:${expiration}`;
  return "v1_" + createHash("sha256").update(raw, "utf8").digest("base64").replace(/=+$/, "");
}

/** A signed download URL path as the JS SDK's downloadUrl builds it (URLSearchParams). */
function signedUrl(path, { user, token, expiration, op = "read" }) {
  const u = new URL("http://x/files");
  if (user) u.searchParams.set("username", user);
  if (path) u.searchParams.set("path", path);
  u.searchParams.set("signature", signature(path, op, user, token, expiration));
  if (expiration !== undefined) u.searchParams.set("signature_expiration", String(expiration));
  return u.pathname + u.search;
}

describe("GET /files", () => {
  let envd;
  let dir;
  const big = randomBytes(64 << 20);
  const nums = Buffer.from(Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join(""));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "envd-files-dl-"));
    writeFileSync(join(dir, "nums.txt"), nums);
    writeFileSync(join(dir, "empty"), "");
    writeFileSync(join(dir, "my document.pdf"), "%PDF-1.4\n");
    writeFileSync(join(dir, 'quo"te.txt'), "q");
    writeFileSync(join(dir, "back\\slash.txt"), "b");
    writeFileSync(join(dir, "ünï cödé.txt"), "u");
    writeFileSync(join(dir, "pngfile"), Buffer.from("89504e470d0a1a0a0000000d49484452", "hex"));
    writeFileSync(join(dir, "page"), "<html><body>hi</body></html>");
    writeFileSync(join(dir, "a.json"), "{}");
    writeFileSync(join(dir, "big.bin"), big);
    writeFileSync(join(dir, "abandoned.bin"), big);  // only the client-gone tests download it
    writeFileSync(join(dir, "mid.bin"), big.subarray(0, 4 << 20));
    symlinkSync(join(dir, "nums.txt"), join(dir, "link.txt"));
    symlinkSync(join(dir, "nums.txt"), join(dir, "link-noext"));
    mkdirSync(join(dir, "sub"));
    symlinkSync(join(dir, "loop2"), join(dir, "loop1"));
    symlinkSync(join(dir, "loop1"), join(dir, "loop2"));
    symlinkSync("/nonexistent-target", join(dir, "dangling"));
    execFileSync("mkfifo", [join(dir, "fifo")]);
    // A fixed modification time in the past, so If-Modified-Since comparisons are exact.
    utimesSync(join(dir, "nums.txt"), new Date("2030-01-02T03:04:05Z"), new Date("2030-01-02T03:04:05Z"));
    envd = await startEnvd({ extraArgs: ["--isnotfc"] });
  });
  after(async () => {
    const alive = envd?.alive();
    const exit = await envd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
    assert.equal(exit.code, 0, `envd exit ${JSON.stringify(exit)}\n${envd.tail()}`);
  });

  const url = (p) => envd.url(q({ path: p }));
  const file = (name) => join(dir, name);

  it("200: body and the headers of http.ServeContent, plus a strong ETag", async () => {
    const r = await curl(url(file("nums.txt")));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, nums);
    assert.equal(r.headers["content-length"], String(nums.length));
    assert.equal(r.headers["content-type"], "text/plain; charset=utf-8");
    assert.equal(r.headers["content-disposition"], "inline; filename=nums.txt");
    assert.equal(r.headers["last-modified"], "Wed, 02 Jan 2030 03:04:05 GMT");
    assert.equal(r.headers["accept-ranges"], "bytes");
    assert.equal(r.headers.vary, "Accept-Encoding");
    assert.match(r.headers.etag, /^"[0-9a-f-]+"$/);
    assert.equal(r.headers["content-encoding"], undefined);
    // The same version gives the same tag; a change gives another.
    assert.equal((await curl(url(file("nums.txt")))).headers.etag, r.headers.etag);
  });

  it("an empty file: Content-Length: 0 and no body (HTTP/1.1 and h2c)", async () => {
    const r = await curl(url(file("empty")));
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-length"], "0");
    assert.equal(r.body.length, 0);
    assert.equal(r.headers["content-type"], "text/plain; charset=utf-8");
    const h2 = await curl(url(file("empty")), ["--http2-prior-knowledge"]);
    assert.equal(h2.status, 200);
    assert.equal(h2.headers["content-length"], "0");
    assert.equal(h2.body.length, 0);
  });

  it("Content-Disposition: token, quoted with escapes, RFC 2231 for non-ASCII", async () => {
    const cases = [
      ["my document.pdf", 'inline; filename="my document.pdf"'],
      ['quo"te.txt', 'inline; filename="quo\\"te.txt"'],
      ["back\\slash.txt", 'inline; filename="back\\\\slash.txt"'],
      ["ünï cödé.txt", "inline; filename*=utf-8''%C3%BCn%C3%AF%20c%C3%B6d%C3%A9.txt"],
    ];
    for (const [name, want] of cases) {
      const r = await h1Request(envd.port, { method: "GET", path: q({ path: file(name) }) });
      assert.equal(r.status, 200, name);
      assert.equal(r.headers["content-disposition"], want, name);
    }
  });

  it("Content-Type: from the raw path's extension, else sniffed; symlinks followed", async () => {
    const ct = async (p) => (await h1Request(envd.port, { method: "GET", path: q({ path: p }) })).headers["content-type"];
    assert.equal(await ct(file("a.json")), "application/json");
    assert.equal(await ct(file("pngfile")), "image/png");
    assert.equal(await ct(file("page")), "text/html; charset=utf-8");
    assert.equal(await ct(file("my document.pdf")), "application/pdf");
    assert.equal(await ct(file("big.bin")) !== undefined, true);
    const viaLink = await h1Request(envd.port, { method: "GET", path: q({ path: file("link-noext") }) });
    assert.equal(viaLink.status, 200);
    assert.deepEqual(viaLink.body, nums);
    assert.equal(viaLink.headers["content-type"], "text/plain; charset=utf-8");
    assert.equal(viaLink.headers["content-disposition"], "inline; filename=link-noext");
  });

  it("Range: single, suffix, open-ended → 206 with Content-Range", async () => {
    const size = nums.length;
    for (const [range, start, end] of [["bytes=0-4", 0, 4], ["bytes=-5", size - 5, size - 1], ["bytes=3890-", 3890, size - 1], ["bytes=10-99999", 10, size - 1]]) {
      const r = await curl(url(file("nums.txt")), ["-H", `Range: ${range}`]);
      assert.equal(r.status, 206, range);
      assert.equal(r.headers["content-range"], `bytes ${start}-${end}/${size}`, range);
      assert.equal(r.headers["content-length"], String(end - start + 1), range);
      assert.deepEqual(r.body, nums.subarray(start, end + 1), range);
      assert.equal(r.headers["content-type"], "text/plain; charset=utf-8");
    }
    // And on h2c.
    const h2 = await curl(url(file("big.bin")), ["--http2-prior-knowledge", "-H", "Range: bytes=1000000-1999999"]);
    assert.equal(h2.status, 206);
    assert.deepEqual(h2.body, big.subarray(1000000, 2000000));
  });

  it("Range: several ranges → multipart/byteranges", async () => {
    const r = await curl(url(file("nums.txt")), ["-H", "Range: bytes=0-4,10-12"]);
    assert.equal(r.status, 206);
    const m = /^multipart\/byteranges; boundary=(.+)$/.exec(r.headers["content-type"]);
    assert.ok(m, r.headers["content-type"]);
    assert.equal(Number(r.headers["content-length"]), r.body.length);
    const b = m[1];
    const want =
      `--${b}\r\nContent-Range: bytes 0-4/${nums.length}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${nums.subarray(0, 5)}` +
      `\r\n--${b}\r\nContent-Range: bytes 10-12/${nums.length}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${nums.subarray(10, 13)}` +
      `\r\n--${b}--\r\n`;
    assert.equal(r.body.toString("latin1"), want);
    // h2c: same body shape.
    const h2 = await curl(url(file("big.bin")), ["--http2-prior-knowledge", "-H", "Range: bytes=0-0,-1"]);
    assert.equal(h2.status, 206);
    assert.match(h2.headers["content-type"], /^multipart\/byteranges; boundary=/);
  });

  it("Range: unsatisfiable → 416 with Content-Range, malformed → 416", async () => {
    const r = await curl(url(file("nums.txt")), ["-H", "Range: bytes=99999-"]);
    assert.equal(r.status, 416);
    assert.equal(r.headers["content-range"], `bytes */${nums.length}`);
    assert.equal(r.body.toString(), "invalid range: failed to overlap\n");
    assert.equal(r.headers["content-type"], "text/plain; charset=utf-8");
    assert.equal(r.headers["last-modified"], undefined);
    const bad = await curl(url(file("nums.txt")), ["-H", "Range: bytes=abc"]);
    assert.equal(bad.status, 416);
    assert.equal(bad.body.toString(), "invalid range\n");
    assert.equal(bad.headers["content-range"], undefined);
    // An empty file: a range that fails to overlap is ignored (Go's ServeContent), a malformed one is not.
    const empty = await curl(url(file("empty")), ["-H", "Range: bytes=0-"]);
    assert.equal(empty.status, 200);
    assert.equal(empty.headers["content-length"], "0");
    assert.equal((await curl(url(file("empty")), ["-H", "Range: bytes=abc"])).status, 416);
  });

  it("If-Modified-Since / If-None-Match → 304; mismatches → 200", async () => {
    const first = await curl(url(file("nums.txt")));
    const etag = first.headers.etag;
    const ims = await curl(url(file("nums.txt")), ["-H", "If-Modified-Since: Wed, 02 Jan 2030 03:04:05 GMT"]);
    assert.equal(ims.status, 304);
    assert.equal(ims.body.length, 0);
    assert.equal(ims.headers.etag, etag);
    assert.equal(ims.headers["content-type"], undefined);
    const older = await curl(url(file("nums.txt")), ["-H", "If-Modified-Since: Wed, 02 Jan 2030 03:04:04 GMT"]);
    assert.equal(older.status, 200);
    const inm = await curl(url(file("nums.txt")), ["-H", `If-None-Match: "nope", ${etag}`]);
    assert.equal(inm.status, 304);
    const weak = await curl(url(file("nums.txt")), ["-H", `If-None-Match: W/${etag}`]);
    assert.equal(weak.status, 304);  // weak comparison
    const other = await curl(url(file("nums.txt")), ["-H", 'If-None-Match: "nope"', "-H", "If-Modified-Since: Wed, 02 Jan 2030 03:04:05 GMT"]);
    assert.equal(other.status, 200);  // If-None-Match present: If-Modified-Since is ignored
    const star = await curl(url(file("nums.txt")), ["-H", "If-None-Match: *"]);
    assert.equal(star.status, 304);
  });

  it("If-Match / If-Unmodified-Since → 412; If-Range decides between 206 and 200", async () => {
    const etag = (await curl(url(file("nums.txt")))).headers.etag;
    assert.equal((await curl(url(file("nums.txt")), ["-H", 'If-Match: "nope"'])).status, 412);
    assert.equal((await curl(url(file("nums.txt")), ["-H", `If-Match: ${etag}`])).status, 200);
    assert.equal((await curl(url(file("nums.txt")), ["-H", "If-Unmodified-Since: Wed, 02 Jan 2030 03:04:04 GMT"])).status, 412);
    assert.equal((await curl(url(file("nums.txt")), ["-H", "If-Unmodified-Since: Wed, 02 Jan 2030 03:04:05 GMT"])).status, 200);
    const range = ["-H", "Range: bytes=0-1"];
    assert.equal((await curl(url(file("nums.txt")), [...range, "-H", `If-Range: ${etag}`])).status, 206);
    assert.equal((await curl(url(file("nums.txt")), [...range, "-H", 'If-Range: "old"'])).status, 200);
    assert.equal((await curl(url(file("nums.txt")), [...range, "-H", `If-Range: W/${etag}`])).status, 200);
    assert.equal((await curl(url(file("nums.txt")), [...range, "-H", "If-Range: Wed, 02 Jan 2030 03:04:05 GMT"])).status, 206);
    assert.equal((await curl(url(file("nums.txt")), [...range, "-H", "If-Range: Wed, 02 Jan 2030 03:04:06 GMT"])).status, 200);
  });

  it("the ETag changes when the file changes", async () => {
    const p = file("changing.txt");
    writeFileSync(p, "one");
    const a = (await curl(url(p))).headers.etag;
    writeFileSync(p, "two");
    const b = (await curl(url(p))).headers.etag;
    assert.notEqual(a, b);
    assert.equal((await curl(url(p), ["-H", `If-None-Match: ${a}`])).status, 200);
  });

  it("Accept-Encoding: 406 when nothing acceptable, or identity refused with Range/conditionals", async () => {
    const none = await curl(url(file("nums.txt")), ["-H", "Accept-Encoding: identity;q=0"]);
    assert.equal(none.status, 406);
    assert.equal(none.body.toString(), jsonErr(406, "error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]"));
    assert.equal(none.headers["content-type"], "application/json; charset=utf-8");
    for (const h of ["Range: bytes=0-1", "If-Modified-Since: Wed, 02 Jan 2030 03:04:05 GMT", 'If-None-Match: "x"', 'If-Range: "x"']) {
      const r = await curl(url(file("nums.txt")), ["-H", "Accept-Encoding: gzip;q=1,*;q=0", "-H", h]);
      assert.equal(r.status, 406, h);
      assert.equal(r.body.toString(), jsonErr(406, "identity encoding not acceptable for Range or conditional request"), h);
    }
    // Unknown codings are ignored: identity.
    const br = await curl(url(file("nums.txt")), ["-H", "Accept-Encoding: br"]);
    assert.equal(br.status, 200);
    assert.equal(br.headers["content-encoding"], undefined);
    // A 404 comes before the 406.
    const missing = await curl(url(file("missing")), ["-H", "Accept-Encoding: identity;q=0"]);
    assert.equal(missing.status, 404);
  });

  it("gzip only when asked: chunked, no Content-Length, weak ETag, Vary (HTTP/1.1 and h2c)", { timeout: 60000 }, async () => {
    const plain = await curl(url(file("mid.bin")));
    const r = await curl(url(file("mid.bin")), ["-H", "Accept-Encoding: gzip"]);
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-encoding"], "gzip");
    assert.equal(r.headers["transfer-encoding"], "chunked");
    assert.equal(r.headers["content-length"], undefined);
    assert.equal(r.headers["last-modified"], undefined);
    assert.equal(r.headers["accept-ranges"], undefined);
    assert.equal(r.headers.vary, "Accept-Encoding");
    assert.equal(r.headers.etag, `W/${plain.headers.etag.slice(0, -1)}-gz"`);
    assert.equal(sha256(gunzipSync(r.body)), sha256(big.subarray(0, 4 << 20)));
    const txt = await curl(url(file("nums.txt")), ["-H", "Accept-Encoding: gzip, deflate"]);
    assert.equal(txt.headers["content-type"], "text/plain; charset=utf-8");
    assert.deepEqual(gunzipSync(txt.body), nums);
    const noext = await curl(url(file("page")), ["-H", "Accept-Encoding: gzip"]);
    assert.equal(noext.headers["content-type"], "application/octet-stream");  // no sniffing on gzip
    const empty = await curl(url(file("empty")), ["-H", "Accept-Encoding: gzip"]);
    assert.equal(gunzipSync(empty.body).length, 0);
    // h2c
    const h2 = await curl(url(file("nums.txt")), ["--http2-prior-knowledge", "-H", "Accept-Encoding: gzip"]);
    assert.equal(h2.status, 200);
    assert.equal(h2.headers["content-encoding"], "gzip");
    assert.deepEqual(gunzipSync(h2.body), nums);
    // Preferring identity by q-value keeps identity.
    const pref = await curl(url(file("nums.txt")), ["-H", "Accept-Encoding: gzip;q=0.5, identity"]);
    assert.equal(pref.headers["content-encoding"], undefined);
    assert.deepEqual(pref.body, nums);
  });

  it("a FIFO without a writer is served empty instead of blocking a pool thread", async () => {
    const r = await h1Request(envd.port, { method: "GET", path: q({ path: file("fifo") }) });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-length"], "0");
  });

  it("errors in envd's order and words (404, 400, 401), jsonError shape", async () => {
    const check = async (path, status, message) => {
      const r = await h1Request(envd.port, { method: "GET", path });
      assert.equal(r.status, status, path);
      assert.equal(r.body.toString(), jsonErr(status, message), path);
      assert.equal(r.headers["content-type"], "application/json; charset=utf-8", path);
      assert.equal(r.headers["x-content-type-options"], "nosniff", path);
    };
    await check(q({ path: file("missing") }), 404, `path '${file("missing")}' does not exist`);
    await check(q({ path: file("sub") }), 400, `path '${file("sub")}' is a directory`);
    await check("/files", 400, "path '/root' is a directory");
    await check(q({ path: "/nope", username: "nobody-here" }), 401, "error looking up user 'nobody-here': user: unknown user nobody-here");
    await check(q({ path: "/nope", username: "" }), 401, "error looking up user '': user: unknown user ");
    const tilde = await h1Request(envd.port, { method: "GET", path: q({ path: "~bob/x" }) });
    assert.equal(tilde.status, 400);
    assert.match(tilde.body.toString(), /^\{"code":400,"message":"error expanding and resolving path '~bob\/x': .*cannot expand user-specific home dir"\}\n$/);
    // Other stat errors: 500 with Go's os.PathError text; a dangling link is missing.
    await check(q({ path: file("nums.txt") + "/" }), 500, `error checking if path exists '${file("nums.txt")}/': stat ${file("nums.txt")}/: not a directory`);
    await check(q({ path: file("loop1") }), 500, `error checking if path exists '${file("loop1")}': stat ${file("loop1")}: too many levels of symbolic links`);
    await check(q({ path: file("dangling") }), 404, `path '${file("dangling")}' does not exist`);
    // A relative path resolves against the user's home.
    await check(q({ path: "definitely-missing-file" }), 404, "path '/root/definitely-missing-file' does not exist");
    // Binding errors: text/plain as Go's http.Error.
    const rep = await h1Request(envd.port, { method: "GET", path: "/files?path=/a&path=/b" });
    assert.equal(rep.status, 400);
    assert.equal(rep.body.toString(), "Invalid format for parameter path: multiple values for single value parameter 'path'\n");
    assert.equal(rep.headers["content-type"], "text/plain; charset=utf-8");
    // HEAD is not routed (chi: 405).
    const head = await h1Request(envd.port, { method: "HEAD", path: q({ path: file("nums.txt") }) });
    assert.equal(head.status, 405);
    assert.equal(head.headers.allow, "GET, POST");
  });

  // How many of envd's fds point at `name` (the file a download holds open).
  const fdsOn = (name) => envd.fdTargets().filter((t) => t.endsWith(` -> ${file(name)}`)).length;

  it("a client that goes away mid-download leaves no fd open (HTTP/1.1)", { timeout: 30000 }, async () => {
    for (const gzip of [false, true]) {
      const c = await rawConnect(envd.port);
      const headers = gzip ? "Accept-Encoding: gzip\r\n" : "";
      c.sock.write(`GET ${q({ path: file("abandoned.bin") })} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`);
      await c.until((s) => s.data.length > 1 << 20, 10000, "the first MiB");
      // The file is open while the download runs (the client reads slower than envd sends).
      c.sock.pause();
      assert.equal(fdsOn("abandoned.bin"), 1, envd.fdTargets().join("\n"));
      c.sock.destroy();
      await waitFor(() => fdsOn("abandoned.bin") === 0, { timeoutMs: 10000, what: `abandoned.bin closed (gzip ${gzip}): ${envd.fdTargets().join(", ")}` });
    }
  });

  it("a stream reset mid-download closes the file; the h2c connection lives on", { timeout: 30000 }, async () => {
    const session = await h2Connect(envd.port);
    try {
      for (const gzip of [false, true]) {
        const req = session.request({ ":method": "GET", ":path": q({ path: file("abandoned.bin") }), ...(gzip ? { "accept-encoding": "gzip" } : {}) });
        let got = 0;
        await new Promise((resolve, reject) => {
          req.on("data", (d) => {
            got += d.length;
            if (got > 1 << 20) resolve();
          });
          req.on("error", reject);
        });
        req.pause();
        assert.equal(fdsOn("abandoned.bin"), 1, envd.fdTargets().join("\n"));
        req.close(http2.constants.NGHTTP2_CANCEL);
        await waitFor(() => fdsOn("abandoned.bin") === 0, { timeoutMs: 10000, what: `abandoned.bin closed (gzip ${gzip}): ${envd.fdTargets().join(", ")}` });
      }
      const r = await h2Request(session, { method: "GET", path: q({ path: file("nums.txt") }) });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, nums);
    } finally {
      session.close();
    }
  });

  it("a file that shrinks mid-download breaks the transfer (HTTP/1.1 and h2c)", { timeout: 30000 }, async () => {
    const p = file("shrinking.bin");
    // HTTP/1.1: the connection closes short of Content-Length.
    writeFileSync(p, big);
    const c = await rawConnect(envd.port);
    c.sock.write(`GET ${q({ path: p })} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await c.until((s) => s.data.length > 1 << 20, 10000, "the first MiB");
    c.sock.pause();
    truncateSync(p, 0);
    c.sock.resume();
    await c.waitClosed(10000);
    const head = c.data.indexOf("\r\n\r\n");
    assert.match(c.data.subarray(0, head).toString("latin1"), /Content-Length: 67108864/i);
    assert.ok(c.data.length - head - 4 < big.length, "the body is short");
    // h2c: the stream is reset.
    writeFileSync(p, big);
    const session = await h2Connect(envd.port);
    try {
      const req = session.request({ ":method": "GET", ":path": q({ path: p }) });
      let got = 0;
      const ended = new Promise((resolve) => {
        req.on("close", () => resolve({ rst: req.rstCode, got }));
        req.on("error", () => {});
      });
      await new Promise((resolve) => req.on("data", (d) => { got += d.length; if (got > 1 << 20) resolve(); }));
      req.pause();
      truncateSync(p, 0);
      req.resume();
      const r = await ended;
      assert.equal(r.rst, http2.constants.NGHTTP2_INTERNAL_ERROR);
      assert.ok(got < big.length);
    } finally {
      session.close();
    }
    await waitFor(() => fdsOn("shrinking.bin") === 0, { what: "shrinking.bin closed" });
  });

  it("64 MiB: identical bytes over HTTP/1.1 and h2c (curl)", { timeout: 120000 }, async () => {
    const want = sha256(big);
    const h1 = await curlDigest(url(file("big.bin")));
    assert.deepEqual(h1, { status: 200, sha256: want, size: big.length });
    const h2 = await curlDigest(url(file("big.bin")), ["--http2-prior-knowledge"]);
    assert.deepEqual(h2, { status: 200, sha256: want, size: big.length });
    // node:http2 with a small window (flow control drives the sender).
    const session = await h2Connect(envd.port, { settings: { initialWindowSize: 65535 } });
    try {
      const r = await h2Request(session, { method: "GET", path: q({ path: file("big.bin") }), timeoutMs: 60000 });
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), want);
    } finally {
      session.close();
    }
  });

  it("pipelined HTTP/1.1 requests after a download are answered in order", async () => {
    const c = await rawConnect(envd.port);
    const one = `GET ${q({ path: file("nums.txt") })} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const two = `GET ${q({ path: file("empty") })} HTTP/1.1\r\nHost: x\r\n\r\n`;
    c.sock.write(one + two + one);
    await c.until((s) => parseH1Responses(s.data).responses.length === 3, 15000, "three responses");
    const rs = parseH1Responses(c.data).responses;
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
    assert.deepEqual(rs[0].body, nums);
    assert.equal(rs[1].body.length, 0);
    assert.deepEqual(rs[2].body, nums);
    c.sock.destroy();
  });
});

describe("GET /files with an access token: header or signed URL (§2.2)", () => {
  let envd;
  let dir;
  const TOKEN = "secret-token-123";
  const names = ["a b.txt", "plus+sign.txt", "per%cent.txt", "and&amp.txt", "ünïcödé ✓.txt", "a=b?c#d.txt"];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "envd-files-sig-"));
    for (const n of names) writeFileSync(join(dir, n), `content of ${n}`);
    envd = await startEnvd({ extraArgs: ["--isnotfc"] });
    const r = await h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json" }, body: JSON.stringify({ accessToken: TOKEN }) });
    assert.equal(r.status, 204);
  });
  after(async () => {
    const exit = await envd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal(exit.code, 0, `envd exit ${JSON.stringify(exit)}\n${envd.tail()}`);
  });

  const get = (path, headers = {}) => h1Request(envd.port, { method: "GET", path, headers });
  const expectErr = async (path, status, message, headers = {}) => {
    const r = await get(path, headers);
    assert.equal(r.status, status, path);
    assert.equal(r.body.toString(), jsonErr(status, message), path);
  };

  it("signed URLs over the decoded path and username (space, +, %, &, non-ASCII)", async () => {
    for (const n of names) {
      const p = join(dir, n);
      for (const user of [undefined, "root"]) {
        const r = await get(signedUrl(p, { user, token: TOKEN }));
        assert.equal(r.status, 200, `${n} ${user}: ${r.body}`);
        assert.equal(r.body.toString(), `content of ${n}`);
        // And with an expiration in the future, over h2c through curl.
        const exp = Math.floor(Date.now() / 1000) + 60;
        const c = await curl(envd.url(signedUrl(p, { user, token: TOKEN, expiration: exp })), ["--http2-prior-knowledge"]);
        assert.equal(c.status, 200, `${n} ${user} exp`);
        assert.equal(c.body.toString(), `content of ${n}`);
      }
    }
  });

  it("the signature covers the operation, path, user and expiration", async () => {
    const p = join(dir, names[0]);
    await expectErr(signedUrl(p, { token: TOKEN, op: "write" }), 401, "invalid signature");
    await expectErr(signedUrl(p, { token: "other", user: "root" }), 401, "invalid signature");
    // Signed for one path, used for another.
    const other = new URL("http://x" + signedUrl(p, { token: TOKEN }));
    other.searchParams.set("path", join(dir, names[1]));
    await expectErr(other.pathname + other.search, 401, "invalid signature");
    // Signed without a user, sent with one.
    const withUser = new URL("http://x" + signedUrl(p, { token: TOKEN }));
    withUser.searchParams.set("username", "root");
    await expectErr(withUser.pathname + withUser.search, 401, "invalid signature");
    // Unnormalised: a path spelled differently is another path.
    const spelled = p.replace(dir, dir + "/.");
    const twice = new URL("http://x" + signedUrl(spelled, { token: TOKEN }));
    twice.searchParams.set("path", p);
    await expectErr(twice.pathname + twice.search, 401, "invalid signature");
    assert.equal((await get(signedUrl(spelled, { token: TOKEN }))).status, 200);
    // A signature for an expiration, sent with another one.
    const exp = Math.floor(Date.now() / 1000) + 60;
    const moved = new URL("http://x" + signedUrl(p, { token: TOKEN, expiration: exp }));
    moved.searchParams.set("signature_expiration", String(exp + 1));
    await expectErr(moved.pathname + moved.search, 401, "invalid signature");
  });

  it("expiration: past → expired, parsed as an int64 (+N and 0N sign as N), bad → 400", async () => {
    const p = join(dir, names[0]);
    await expectErr(signedUrl(p, { token: TOKEN, expiration: 1 }), 401, "signature is already expired");
    const past = Math.floor(Date.now() / 1000) - 5;
    await expectErr(signedUrl(p, { token: TOKEN, expiration: past }), 401, "signature is already expired");
    const exp = Math.floor(Date.now() / 1000) + 60;
    const sig = signature(p, "read", undefined, TOKEN, exp);
    for (const spelled of [`%2B${exp}`, `0${exp}`]) {
      const r = await get(`/files?path=${encodeURIComponent(p)}&signature=${encodeURIComponent(sig)}&signature_expiration=${spelled}`);
      assert.equal(r.status, 200, spelled);
    }
    const bad = await get(`/files?path=${encodeURIComponent(p)}&signature=${encodeURIComponent(sig)}&signature_expiration=soon`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.toString(), 'Invalid format for parameter signature_expiration: error binding string parameter: strconv.ParseInt: parsing "soon": invalid syntax\n');
  });

  it("the token header instead of a signature; wrong header; nothing", async () => {
    const p = join(dir, names[0]);
    const r = await get(q({ path: p }), { "x-access-token": TOKEN });
    assert.equal(r.status, 200);
    // With the right header, a stale signature does not matter.
    const stale = await get(signedUrl(p, { token: TOKEN, expiration: 1 }), { "x-access-token": TOKEN });
    assert.equal(stale.status, 200);
    await expectErr(q({ path: p }), 401, "missing signature query parameter");
    await expectErr(signedUrl(p, { token: TOKEN }), 401, "access token present in header but does not match", { "x-access-token": "wrong" });
    await expectErr(q({ path: p, signature: "v1_nope" }), 401, "invalid signature");
    // Signing is checked before the user.
    await expectErr(q({ path: p, username: "nobody-here", signature: "v1_nope" }), 401, "invalid signature");
    const user = await get(signedUrl(p, { token: TOKEN, user: "nobody-here" }));
    assert.equal(user.status, 401);
    assert.equal(user.body.toString(), jsonErr(401, "error looking up user 'nobody-here': user: unknown user nobody-here"));
  });
});
