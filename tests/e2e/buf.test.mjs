// `buf curl` (npm @bufbuild/buf) against a real envd for each protocol it speaks: Connect (HTTP/1.1
// and h2c), gRPC (h2c) and gRPC-Web (HTTP/1.1 and h2c). The schema comes from the .proto files.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { it, startEnvd, protoDir } from "./lib/envd.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const BUF = join(here, "node_modules", ".bin", "buf");

let envd;
let cacheDir;

before(async () => {
  assert.ok(existsSync(BUF), `${BUF} missing: run npm ci in tests/e2e`);
  envd = await startEnvd();
  cacheDir = mkdtempSync(join(tmpdir(), "envd-e2e-buf-"));
});

after(async () => {
  const alive = envd?.alive();
  await envd?.stop();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
});

/** Runs buf curl; resolves { code, stdout, stderr }. */
function bufCurl(args, { stdin, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(BUF, ["curl", "--schema", protoDir(), ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, BUF_CACHE_DIR: cacheDir, NO_COLOR: "1" },
    });
    let stdout = "";
    let stderr = "";
    const t = setTimeout(() => { p.kill("SIGKILL"); reject(new Error(`buf curl ${args.join(" ")} timed out`)); }, timeoutMs);
    p.stdout.on("data", (d) => { stdout += d; });
    p.stderr.on("data", (d) => { stderr += d; });
    p.on("error", (e) => { clearTimeout(t); reject(e); });
    p.on("close", (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    p.stdin.end(stdin ?? "");
  });
}

/** Splits buf's pretty-printed output (one JSON document after another) into objects. */
function jsonDocs(text) {
  const docs = [];
  let depth = 0;
  let start = -1;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (c === "\\") i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === "{") { if (depth++ === 0) start = i; }
    else if (c === "}") { if (--depth === 0) docs.push(JSON.parse(text.slice(start, i + 1))); }
  }
  return docs;
}

// buf curl exits with 8 × the gRPC code number when the RPC fails.
const exitFor = (grpcCode) => grpcCode * 8;

const PROTOCOLS = [
  { name: "connect over HTTP/1.1", flags: ["--protocol", "connect"], h2: false },
  { name: "connect over h2c", flags: ["--protocol", "connect", "--http2-prior-knowledge"], h2: true },
  { name: "grpc over h2c", flags: ["--protocol", "grpc", "--http2-prior-knowledge"], h2: true },
  { name: "grpcweb over HTTP/1.1", flags: ["--protocol", "grpcweb"], h2: false },
  { name: "grpcweb over h2c", flags: ["--protocol", "grpcweb", "--http2-prior-knowledge"], h2: true },
];

for (const p of PROTOCOLS) {
  describe(`buf curl ${p.name}`, () => {
    it("Echo", async () => {
      const r = await bufCurl([...p.flags, "-d", JSON.stringify({ text: "buf ✓", number: "-17", payload: "3q2+7w==" }), envd.url("/envdtest.Echo/Echo")]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(jsonDocs(r.stdout), [{ text: "buf ✓", number: "-17", payload: "3q2+7w==" }]);
    });

    it("envdtest.Echo/Unimplemented → unimplemented", async () => {
      for (const [path, body] of [["/envdtest.Echo/Unimplemented", {}]]) {
        const r = await bufCurl([...p.flags, "-d", JSON.stringify(body), envd.url(path)]);
        assert.equal(r.code, exitFor(12), `${path}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
        const [err] = jsonDocs(r.stderr);
        assert.equal(err?.code, "unimplemented", r.stderr);
      }
    });

    it("Fail → the error code and message", async () => {
      const r = await bufCurl([...p.flags, "-d", JSON.stringify({ code: "failed_precondition", message: "not ready yet" }), envd.url("/envdtest.Echo/Fail")]);
      assert.equal(r.code, exitFor(9), r.stderr);
      const [err] = jsonDocs(r.stderr);
      assert.equal(err?.code, "failed_precondition");
      assert.equal(err?.message, "not ready yet");
    });

    it("server stream Ticks", async () => {
      const r = await bufCurl([...p.flags, "-d", JSON.stringify({ count: 4, payloadSize: 3 }), envd.url("/envdtest.Echo/Ticks")]);
      assert.equal(r.code, 0, r.stderr);
      const docs = jsonDocs(r.stdout);
      assert.equal(docs.length, 4);
      for (const d of docs) {
        assert.equal(Buffer.from(d.payload, "base64").length, 3);
        assert.match(d.sentAtMs, /^\d+$/, "int64 as a JSON string");
      }
    });

    it("server stream Ticks ending in an error", async () => {
      const r = await bufCurl([...p.flags, "-d", JSON.stringify({ count: 2, failCode: "aborted" }), envd.url("/envdtest.Echo/Ticks")]);
      assert.equal(r.code, exitFor(10), r.stderr);
      assert.equal(jsonDocs(r.stdout).length, 2);
      assert.equal(jsonDocs(r.stderr)[0]?.code, "aborted");
    });

    if (p.h2) {
      it("client stream Collect (messages from stdin)", async () => {
        const input = Array.from({ length: 5 }, (_, i) => JSON.stringify({ text: `m${i}`, payload: "AAECAw==" })).join("\n");
        const r = await bufCurl([...p.flags, "-d", "@-", envd.url("/envdtest.Echo/Collect")], { stdin: input });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(jsonDocs(r.stdout), [{ count: "5", bytes: "20" }]);
      });
    }

    // buf refuses Connect-Timeout-Ms/Grpc-Timeout in -H; its --timeout becomes the RPC deadline
    // (sent as Connect-Timeout-Ms or grpc-timeout, whatever is left of 1 s after loading the schema).
    it("--timeout → deadline_exceeded", async () => {
      const t0 = Date.now();
      const r = await bufCurl([...p.flags, "--timeout", "1s", "-d", JSON.stringify({ ms: 60000 }), envd.url("/envdtest.Echo/Sleep")]);
      assert.equal(r.code, exitFor(4), `${r.stdout}\n${r.stderr}`);
      assert.equal(jsonDocs(r.stderr)[0]?.code, "deadline_exceeded");
      assert.ok(Date.now() - t0 < 30000, `took ${Date.now() - t0} ms`);  // vs the 60 s Sleep
    });
  });
}
