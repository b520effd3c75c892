// Faults, each end to end (issue "conformance, faults, soak": Faults). What earlier files already
// cover is not repeated here: a client gone mid-upload (files_upload), mid-download (files_download),
// mid-stream (badinput, process), 507 on a known length (files_upload), the accept back-off under
// prlimit (bounds), the watch budget flag (watch), SIGTERM with test-service streams open (control).
// This file adds: kill -9 of envd and a restart on the same port; SIGTERM during process streams,
// watches, uploads and downloads; a child that ignores SIGTERM; a process that closes its stdout
// early; client disconnects at every stage of a Start stream, an upload and a download (HTTP/1.1
// and h2c); a full disk during in-place uploads of unknown length; fd exhaustion seen by RPCs on a
// connection opened before it; the kernel's inotify instance and watch limits (in a user
// namespace of their own, so the machine's sysctls are never touched).
import { describe, it as nodeIt, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, execSync } from "node:child_process";
import {
  mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, readdirSync, readlinkSync, statSync, existsSync,
} from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  startEnvd, service, waitFor, delay, withTimeout, rawConnect, parseH1Responses, h1Request, h2Connect,
  HOST,
} from "./lib/envd.mjs";

const it = (name, opts, fn) => (typeof opts === "function" ? nodeIt(name, { timeout: 30000 }, opts) : nodeIt(name, { timeout: 30000, ...opts }, fn));

const tmp = mkdtempSync("/tmp/envd-faults-");
after(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const freshDir = (name = "d") => {
  const p = join(tmp, `${name}${++seq}`);
  mkdirSync(p, { recursive: true });
  return p;
};
const q = (params) => new URLSearchParams(params).toString();

function cgroupArgs() {
  const line = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => / - cgroup2 /.test(l));
  return line ? ["-cgroup-root", line.split(" ")[4]] : ["-no-cgroups"];
}

/** "R", "S", "Z"… of a pid, or null once it is gone. A zombie counts as ended. */
function procState(pid) {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[0];
  } catch {
    return null;
  }
}
const running = (pid) => { const s = procState(pid); return s !== null && s !== "Z" && s !== "X"; };
const killGroup = (pid) => { try { process.kill(-pid, "SIGKILL"); } catch { /* gone */ } try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } };

/** envd's fds that point under `dir` (an O_TMPFILE shows as "<dir>/#<ino> (deleted)"). */
const openFilesUnder = (pid, dir) => readdirSync(`/proc/${pid}/fd`).map((n) => {
  try { return readlinkSync(`/proc/${pid}/fd/${n}`); } catch { return ""; }
}).filter((t) => t.startsWith(dir));

const clients = (d, version = "1.1") => {
  const transport = createConnectTransport({ baseUrl: d.baseUrl, httpVersion: version });
  return { proc: createClient(service("process.Process"), transport), fs: createClient(service("filesystem.Filesystem"), transport) };
};

/**
 * Starts a process and returns once its start event arrived: { pid, events (so far and later),
 * done (resolves { end, error }) }. The stream keeps being read in the background.
 */
async function startStream(proc, request, options = {}) {
  const iter = proc.start(request, options)[Symbol.asyncIterator]();
  const first = await iter.next();
  assert.equal(first.value?.event?.event?.case, "start", JSON.stringify(first.value));
  const out = { pid: first.value.event.event.value.pid, stdout: "", stderr: "", pty: "", end: undefined, error: null };
  out.done = (async () => {
    try {
      for (;;) {
        const r = await iter.next();
        if (r.done) break;
        const ev = r.value.event?.event;
        if (ev?.case === "data") out[ev.value.output.case] += Buffer.from(ev.value.output.value).toString("utf8");
        else if (ev?.case === "end") out.end = ev.value;
      }
    } catch (e) {
      out.error = e;
    }
    return out;
  })();
  return out;
}

// ---------------------------------------------------------------------------------------------

describe("kill -9 of envd, then a new envd on the same port", () => {
  it("a non-PTY process writing to a file survives; PTY sessions and pipe writers end as with Go's envd; the new envd answers", async () => {
    const args = ["--isnotfc", ...cgroupArgs()];
    const d1 = await startEnvd({ testServices: false, extraArgs: args });
    const port = d1.port;
    const { proc } = clients(d1);
    const out = join(freshDir("k9"), "out.log");
    const pids = [];
    try {
      // Writes to a file only (its stdout pipe stays silent): survives, reparented.
      const fileWriter = await startStream(proc, { process: { cmd: "/bin/sh", args: ["-c", `while :; do echo x >> ${out}; sleep 0.05; done`] } });
      // Writes to its stdout pipe: once the reader is gone the next write gets SIGPIPE.
      const pipeWriter = await startStream(proc, { process: { cmd: "/bin/sh", args: ["-c", "while :; do echo tick; sleep 0.05; done"] } });
      // An interactive shell on a PTY: the master closes with envd, the session gets SIGHUP.
      const pty = await startStream(proc, { process: { cmd: "/bin/bash", args: ["-i"] }, pty: { size: { rows: 24, cols: 80 } } });
      pids.push(fileWriter.pid, pipeWriter.pid, pty.pid);
      await waitFor(() => existsSync(out) && readFileSync(out, "utf8").length > 0, { what: "the file writer writing" });
      await waitFor(() => pipeWriter.stdout.includes("tick"), { what: "the pipe writer writing" });

      d1.child.kill("SIGKILL");
      await waitFor(() => d1.exitStatus(), { what: "envd to die" });
      assert.equal(d1.exitStatus().signal, "SIGKILL");

      await waitFor(() => !running(pipeWriter.pid), { what: "the pipe writer to end (SIGPIPE)" });
      await waitFor(() => !running(pty.pid), { what: "the PTY shell to end (SIGHUP)" });
      assert.ok(running(fileWriter.pid), "the file writer survives envd");
      const size = statSync(out).size;
      await waitFor(() => statSync(out).size > size, { what: "the file writer still writing after envd died" });

      // The new envd binds the same port at once and answers correctly. It knows nothing of the
      // old processes (contract §7.2) and never signals them.
      const d2 = await startEnvd({ testServices: false, extraArgs: [...args, "--port", String(port)] });
      try {
        assert.equal(d2.port, port);
        const c2 = clients(d2, "2");
        assert.equal((await fetch(d2.url("/health"))).status, 204);
        assert.deepEqual((await c2.proc.list({})).processes, []);
        const e = await c2.proc.sendSignal({ process: { selector: { case: "pid", value: fileWriter.pid } }, signal: 9 }).catch((x) => x);
        assert.ok(e instanceof ConnectError && e.code === Code.NotFound, String(e));
        assert.ok(running(fileWriter.pid), "a not_found SendSignal touches nothing");
        const s = await startStream(c2.proc, { process: { cmd: "/bin/echo", args: ["after restart"] } });
        const r = await s.done;
        assert.equal(r.error, null);
        assert.equal(r.stdout, "after restart\n");
        assert.equal(r.end?.exitCode, 0);
      } finally {
        await d2.stop();
      }
      assert.ok(running(fileWriter.pid), "the file writer outlives the second envd too");
    } finally {
      for (const p of pids) killGroup(p);
      await d1.stop();
    }
  });
});

describe("SIGTERM to envd with streams, watches, uploads and downloads in flight", () => {
  it("streams and watches end unavailable, an atomic upload leaves the old file and no temp file, a download is cut short, exit 0; started processes live on", async () => {
    const d = await startEnvd({ testServices: false, extraArgs: ["--isnotfc", ...cgroupArgs(), "--shutdown-timeout-ms", "60000"] });
    const dir = freshDir("term");
    const pids = [];
    try {
      const h1 = clients(d, "1.1");
      const h2 = clients(d, "2");
      // Start streams on both transports.
      const s1 = await startStream(h1.proc, { process: { cmd: "/bin/sh", args: ["-c", "echo one; exec sleep 1000"] } });
      const s2 = await startStream(h2.proc, { process: { cmd: "/bin/sh", args: ["-c", "echo two; exec sleep 1000"] } });
      pids.push(s1.pid, s2.pid);
      // A watch that has started.
      const watchEvents = [];
      let watchError = null;
      let watchStarted;
      const started = new Promise((r) => { watchStarted = r; });
      const watchDone = (async () => {
        try {
          for await (const m of h2.fs.watchDir({ path: dir })) {
            if (m.event.case === "start") watchStarted();
            else if (m.event.case === "filesystem") watchEvents.push(m.event.value.name);
          }
        } catch (e) {
          watchError = e;
        }
      })();
      await started;
      // An atomic upload and an in-place upload half sent.
      const atomicPath = join(dir, "atomic.bin");
      const inplacePath = join(dir, "inplace.bin");
      const old = randomBytes(1000);
      writeFileSync(atomicPath, old);
      writeFileSync(inplacePath, old);
      const ups = [];
      for (const [p, atomic] of [[atomicPath, true], [inplacePath, false]]) {
        const c = await rawConnect(d.port);
        c.sock.on("error", () => {});
        c.sock.write(`POST /files?${q({ path: p, ...(atomic ? { atomic: "true" } : {}) })} HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 1000000\r\n\r\n`);
        await new Promise((res) => c.sock.write(Buffer.alloc(300000, 7), res));
        ups.push(c);
      }
      // The same over h2c (atomic), and a unary RPC and a compose whose bodies are half sent.
      const h2AtomicPath = join(dir, "h2atomic.bin");
      writeFileSync(h2AtomicPath, old);
      const session = await h2Connect(d.port);
      session.on("error", () => {});
      const h2up = session.request({ ":method": "POST", ":path": `/files?${q({ path: h2AtomicPath, atomic: "true" })}`, "content-type": "application/octet-stream", "content-length": "1000000" }, { endStream: false });
      const h2upStatus = new Promise((res) => { h2up.on("response", (h) => res(h[":status"])); h2up.on("error", () => res("reset")); h2up.on("close", () => res("closed")); });
      h2up.write(Buffer.alloc(300000, 7));
      const halfUnary = await rawConnect(d.port);
      halfUnary.sock.on("error", () => {});
      halfUnary.sock.write(`POST /filesystem.Filesystem/Stat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"path":`);
      const halfCompose = await rawConnect(d.port);
      halfCompose.sock.on("error", () => {});
      halfCompose.sock.write(`POST /files/compose HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"source_paths":`);
      await waitFor(() => statSync(inplacePath).size >= 100000 && openFilesUnder(d.pid, dir).length >= 3, { what: "the uploads writing" });
      // A download the client does not read: envd is blocked writing it.
      const big = join(dir, "big.bin");
      writeFileSync(big, Buffer.alloc(64 * 1024 * 1024, 1));
      const dl = await rawConnect(d.port);
      dl.sock.on("error", () => {});
      dl.sock.write(`GET /files?${q({ path: big })} HTTP/1.1\r\nhost: x\r\n\r\n`);
      await dl.until((s) => s.data.includes("\r\n\r\n"), 5000, "the download's head");
      dl.sock.pause();
      await waitFor(() => openFilesUnder(d.pid, big).length === 1, { what: "the download open" });

      d.child.kill("SIGTERM");
      const exit = await waitFor(() => d.exitStatus(), { timeoutMs: 10000, what: "envd to exit" });
      assert.deepEqual(exit, { code: 0, signal: null }, d.tail());
      assert.doesNotMatch(d.stderr(), /second signal/);
      // Everything ended by cancellation, none by the (long) shutdown timeout: half-sent bodies too.
      assert.doesNotMatch(d.stderr(), /requests still open after/);

      for (const s of [s1, s2]) {
        const r = await withTimeout(s.done, 5000, "a Start stream's end");
        assert.ok(r.error instanceof ConnectError, `stream ended with ${r.error} / ${JSON.stringify(r.end)}`);
        assert.equal(r.error.code, Code.Unavailable, String(r.error));
        assert.equal(r.error.rawMessage, "envd is shutting down");
        assert.ok(running(s.pid), "a started process keeps running after envd exits");
      }
      await withTimeout(watchDone, 5000, "the watch's end");
      assert.equal(watchError?.code, Code.Unavailable, String(watchError));
      assert.equal(watchError.rawMessage, "envd is shutting down");

      // Uploads: answered 503 (or cut), never 200; the atomic target is untouched and nothing
      // else is left in the directory; the in-place target holds a prefix of the new content
      // (README: in place, a failure after truncation leaves a prefix, never a mix).
      for (const c of ups) {
        await c.waitClosed(5000).catch(() => {});
        const resp = parseH1Responses(c.data, { closed: true }).responses[0];
        assert.ok(!resp || resp.status === 503, `upload answered ${resp?.status} ${resp?.body}`);
      }
      assert.ok(["503", 503, "reset", "closed"].includes(await h2upStatus), `h2c upload: ${await h2upStatus}`);
      for (const [c, what] of [[halfUnary, "unary"], [halfCompose, "compose"]]) {
        await c.waitClosed(5000).catch(() => {});
        const resp = parseH1Responses(c.data, { closed: true }).responses[0];
        assert.ok(!resp || resp.status === 503, `half-sent ${what} answered ${resp?.status} ${resp?.body}`);
      }
      assert.ok(readFileSync(atomicPath).equals(old), "the atomic upload's target is untouched");
      assert.ok(readFileSync(h2AtomicPath).equals(old), "the h2c atomic upload's target is untouched");
      const now = readFileSync(inplacePath);
      assert.ok(now.length <= 300000 && now.every((b) => b === 7), `in place: a prefix of the new content (${now.length} bytes)`);
      assert.deepEqual(readdirSync(dir).sort(), ["atomic.bin", "big.bin", "h2atomic.bin", "inplace.bin"], "no temporary file left");

      // The download: cut before its full length.
      dl.sock.resume();
      await dl.waitClosed(10000);
      const head = dl.data.indexOf("\r\n\r\n");
      assert.match(dl.data.subarray(0, head).toString("latin1"), /^HTTP\/1\.1 200/);
      assert.ok(dl.data.length - head - 4 < 64 * 1024 * 1024, "the download did not pretend to complete");
    } finally {
      for (const p of pids) killGroup(p);
      await d.stop();
    }
  });
});
