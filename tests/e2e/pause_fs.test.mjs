// Filesystem freeze against a real envd (contract §6.8, operations issue): POST /fsfreeze and
// /fsthaw on a loop-mounted ext4 the test makes (never the machine's /), tmpfs refusing to freeze,
// the -isnotfc default (no path: 503), the /init and watchdog thaws, the write gate, and nothing
// wedging: envd's own log file lives on the frozen filesystem while an upload to it is in flight.
// Cleanup thaws the filesystem (fsfreeze -u) before anything else.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { connectJson, envdBin, startEnvd, waitFor, withTimeout } from "./lib/envd.mjs";
import { loopExt4, loopSkipReason } from "./lib/pause.mjs";

const skip = loopSkipReason();

async function post(url, headers = {}, body) {
  const r = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(30_000) });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

/** True if the filesystem at `mnt` is frozen now. Thaws it as a side effect only if it was frozen. */
const wasFrozenThawNow = (mnt) => spawnSync("fsfreeze", ["-u", mnt]).status === 0;

describe("fsfreeze without a configured path", () => {
  it("-isnotfc without --fsfreeze-path: /fsfreeze and /fsthaw answer 503", async () => {
    const envd = await startEnvd({ extraArgs: ["-isnotfc", "-no-cgroups"] });
    try {
      for (const p of ["/fsfreeze", "/fsthaw"]) {
        const r = await post(envd.url(p));
        assert.equal(r.status, 503, p);
        assert.deepEqual(JSON.parse(r.text), { code: 503, message: "no fsfreeze path configured" });
      }
    } finally {
      await envd.stop();
    }
  });
});

describe("fsfreeze on tmpfs", { skip: skip ?? false }, () => {
  it("FIFREEZE fails on tmpfs: /fsfreeze answers the error, never a 204", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "envd-e2e-tmpfs-"));
    spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
    const envd = await startEnvd({ extraArgs: ["-isnotfc", "-no-cgroups", "--fsfreeze-path", dir] });
    try {
      const r = await post(envd.url("/fsfreeze"));
      assert.equal(r.status, 500, r.text);
      assert.deepEqual(JSON.parse(r.text), { code: 500, message: `FIFREEZE ${dir}: operation not supported` });
      // Nothing is frozen, so a thaw has nothing to do.
      assert.equal((await post(envd.url("/fsthaw"))).status, 204);
      // A missing path: the open error.
      const gone = await startEnvd({ extraArgs: ["-isnotfc", "-no-cgroups", "--fsfreeze-path", `${dir}/missing`] });
      try {
        const m = await post(gone.url("/fsfreeze"));
        assert.equal(m.status, 500);
        assert.equal(JSON.parse(m.text).message, `open ${dir}/missing: no such file or directory`);
      } finally {
        await gone.stop();
      }
    } finally {
      await envd.stop();
      spawnSync("umount", [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("fsfreeze on a loop-mounted ext4 holding envd's log", { skip: skip ?? false }, () => {
  let loop;
  let child;
  let base;
  let exited;
  const logPath = () => path.join(loop.mnt, "envd.log");
  const log = () => fs.readFileSync(logPath(), "utf8"); // reads work on a frozen filesystem

  before(async () => {
    loop = loopExt4(64);
    const fd = fs.openSync(path.join(loop.mnt, "envd.log"), "a");
    child = spawn(envdBin(), ["--port", "0", "-isnotfc", "-no-cgroups", "--log-level", "debug", "--fsfreeze-path", loop.mnt], {
      stdio: ["ignore", "ignore", fd],
    });
    fs.closeSync(fd);
    exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
    const m = await waitFor(() => /listening on [0-9.]+:(\d+)/.exec(log()), { timeoutMs: 10_000, what: "listening on" });
    base = `http://127.0.0.1:${m[1]}`;
  });
  after(async () => {
    loop?.thaw(); // first, whatever happened
    child?.kill("SIGKILL");
    await exited;
    loop?.cleanup();
  });

  it("an upload in flight while frozen: /fsthaw answers 204, then the upload completes; the loop never stops", async () => {
    const piece = Buffer.alloc(1 << 20, 0x61);
    const target = path.join(loop.mnt, "up.bin");
    // A raw upload of 2 MiB, sent in two halves.
    const req = http.request(`${base}/files?path=${encodeURIComponent(target)}`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "content-length": String(2 * piece.length) },
    });
    const answered = new Promise((resolve, reject) => {
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => { body += d; });
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      req.on("error", reject);
    });
    req.write(piece);
    await waitFor(() => fs.existsSync(target) && fs.statSync(target).size > 0, { what: "the first half on disk" });

    const f = await post(`${base}/fsfreeze`);
    assert.equal(f.status, 204, f.text);
    // Frozen by us: a second freeze is refused, and new writes are refused instead of parking.
    const again = await post(`${base}/fsfreeze`);
    assert.equal(again.status, 503);
    assert.equal(JSON.parse(again.text).message, "the filesystem is already frozen");
    const up2 = await post(`${base}/files?path=${encodeURIComponent(path.join(loop.mnt, "other"))}`, { "content-type": "application/octet-stream" }, "x");
    assert.equal(up2.status, 503);
    assert.deepEqual(JSON.parse(up2.text), { code: 503, message: "filesystem frozen" });
    const mk = await connectJson(Number(new URL(base).port), "/filesystem.Filesystem/MakeDir", { path: path.join(loop.mnt, "d") });
    assert.equal(mk.status, 503);

    // The rest of the upload: its write parks on the blocking pool until the thaw.
    req.end(piece);
    // The loop keeps serving while the log file cannot be written: these lines are queued.
    for (let i = 0; i < 20; i++) {
      assert.equal((await fetch(`${base}/health`)).status, 204);
      assert.equal((await fetch(`${base}/envs`)).status, 200);
    }
    const before = log();
    assert.ok(!before.includes('"message":"filesystem frozen"'), "nothing reached the frozen log file");

    const t = await withTimeout(post(`${base}/fsthaw`), 30_000, "/fsthaw");
    assert.equal(t.status, 204, t.text);
    assert.equal(wasFrozenThawNow(loop.mnt), false, "thawed");
    const done = await withTimeout(answered, 30_000, "the upload");
    assert.equal(done.status, 200, done.body);
    assert.equal(fs.statSync(target).size, 2 * piece.length);
    assert.ok(fs.readFileSync(target).equals(Buffer.concat([piece, piece])));
    // The queued lines reach the file after the thaw: the freeze, the /health probes, the thaw.
    await waitFor(() => /"message":"filesystem thawed"/.test(log()), { what: "the thaw line in the log file" });
    const after = log();
    assert.ok(after.includes('"message":"filesystem frozen"'));
    assert.ok((after.match(/"path":"\/health"/g) ?? []).length >= 20, "the /health lines logged while frozen");
    // A thaw with nothing frozen is a no-op.
    assert.equal((await post(`${base}/fsthaw`)).status, 204);
  });

  it("the next authorised /init thaws a frozen filesystem", async () => {
    assert.equal((await post(`${base}/fsfreeze`)).status, 204);
    const i = await post(`${base}/init`, {}, "{}");
    assert.equal(i.status, 204);
    assert.equal(wasFrozenThawNow(loop.mnt), false, "/init thawed it");
    await waitFor(() => /"filesystem thawed","by":"\/init"/.test(log()), { what: "the /init thaw line" });
  });
});

describe("fsfreeze watchdog", { skip: skip ?? false }, () => {
  let loop;
  let envd;
  before(async () => {
    loop = loopExt4(32);
    envd = await startEnvd({ extraArgs: ["-isnotfc", "-no-cgroups", "--fsfreeze-path", loop.mnt, "--thaw-watchdog-ms", "400"] });
  });
  after(async () => {
    loop?.thaw();
    await envd?.stop();
    loop?.cleanup();
  });

  it("SIGTERM thaws the filesystem this envd froze before it exits", async () => {
    const own = await startEnvd({ extraArgs: ["-isnotfc", "-no-cgroups", "--fsfreeze-path", loop.mnt] });
    try {
      assert.equal((await post(own.url("/fsfreeze"))).status, 204);
    } finally {
      const exit = await own.stop();
      assert.equal(exit.code, 0, own.tail());
    }
    assert.equal(wasFrozenThawNow(loop.mnt), false, "thawed at shutdown");
    assert.match(own.stderr(), /"filesystem thawed","by":"shutdown"/);
  });

  it("a filesystem freeze nobody thaws is undone by the watchdog", async () => {
    assert.equal((await post(envd.url("/fsfreeze"))).status, 204);
    await waitFor(() => /"filesystem thawed","by":"watchdog"/.test(envd.stderr()), { timeoutMs: 10_000, what: "the watchdog's thaw" });
    assert.equal(wasFrozenThawNow(loop.mnt), false);
  });

});
