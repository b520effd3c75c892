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
  connectJson, h2Request, HOST,
} from "./lib/envd.mjs";
import http2 from "node:http2";

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
      await dl.until((s) => s.data.includes("\r\n\r\n"), 15000, "the download's head");
      dl.sock.pause();
      await waitFor(() => openFilesUnder(d.pid, big).length === 1, { what: "the download open" });

      d.child.kill("SIGTERM");
      const exit = await waitFor(() => d.exitStatus(), { timeoutMs: 10000, what: "envd to exit" });
      assert.deepEqual(exit, { code: 0, signal: null }, d.tail());
      assert.doesNotMatch(d.stderr(), /second signal/);
      // Everything ended by cancellation, none by the (long) shutdown timeout: half-sent bodies too.
      assert.doesNotMatch(d.stderr(), /requests still open after/);

      for (const s of [s1, s2]) {
        const r = await withTimeout(s.done, 15000, "a Start stream's end");
        assert.ok(r.error instanceof ConnectError, `stream ended with ${r.error} / ${JSON.stringify(r.end)}`);
        assert.equal(r.error.code, Code.Unavailable, String(r.error));
        assert.equal(r.error.rawMessage, "envd is shutting down");
        assert.ok(running(s.pid), "a started process keeps running after envd exits");
      }
      await withTimeout(watchDone, 15000, "the watch's end");
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

describe("misbehaving children", () => {
  let d;
  before(async () => { d = await startEnvd({ testServices: false, extraArgs: ["--isnotfc", ...cgroupArgs(), "--shutdown-timeout-ms", "60000"] }); });
  after(async () => { await d?.stop(); });
  const pidSel = (pid) => ({ selector: { case: "pid", value: pid } });

  it("a child that ignores SIGTERM: SendSignal(SIGTERM) succeeds and changes nothing, SIGKILL ends it; envd's own SIGTERM does not wait for it", async () => {
    for (const version of ["1.1", "2"]) {
      const { proc } = clients(d, version);
      // The shell ignores TERM (so does everything it starts: SIG_IGN survives exec), then echoes
      // each line it reads: an echo after the signal proves the signal was taken and ignored.
      const s = await startStream(proc, { process: { cmd: "/bin/sh", args: ["-c", "trap '' TERM; echo ready; while read l; do echo \"got $l\"; done"] }, stdin: true });
      await waitFor(() => s.stdout.includes("ready"), { what: "ready" });
      await proc.sendSignal({ process: pidSel(s.pid), signal: 15 });
      await proc.sendInput({ process: pidSel(s.pid), input: { input: { case: "stdin", value: Buffer.from("after-term\n") } } });
      await waitFor(() => s.stdout.includes("got after-term"), { what: "the child still answering after SIGTERM" });
      assert.equal(s.end, undefined);
      assert.ok(running(s.pid));
      await proc.sendSignal({ process: pidSel(s.pid), signal: 9 });
      const r = await withTimeout(s.done, 15000, "the end after SIGKILL");
      assert.equal(r.error, null, String(r.error));
      assert.equal(r.end?.status, "signal: killed");
      assert.equal(r.end?.exited, false);
    }
    // envd's own shutdown neither signals nor waits for such a child.
    const e = await startEnvd({ testServices: false, extraArgs: ["--isnotfc", ...cgroupArgs(), "--shutdown-timeout-ms", "60000"] });
    const { proc } = clients(e, "2");
    const s = await startStream(proc, { process: { cmd: "/bin/sh", args: ["-c", "trap '' TERM HUP INT; echo ready; exec sleep 1000"] } });
    try {
      await waitFor(() => s.stdout.includes("ready"), { what: "ready" });
      e.child.kill("SIGTERM");
      const exit = await waitFor(() => e.exitStatus(), { timeoutMs: 10000, what: "envd to exit" });
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.doesNotMatch(e.stderr(), /requests still open after/);
      assert.equal((await s.done).error?.code, Code.Unavailable);
      assert.ok(running(s.pid), "the child outlives envd");
    } finally {
      killGroup(s.pid);
      await e.stop();
    }
  });

  it("a process that closes its stdout early: its stderr still streams and the stream ends with its real exit, not at EOF", async () => {
    for (const version of ["1.1", "2"]) {
      const { proc } = clients(d, version);
      // stdout closed at once; stderr later; the exit code waits for a line on stdin.
      let s = await startStream(proc, { process: { cmd: "/bin/sh", args: ["-c", "echo first; exec 1>&-; echo err-after-close >&2; read l; echo \"bye $l\" >&2; exit 3"] }, stdin: true });
      await waitFor(() => s.stderr.includes("err-after-close"), { what: "stderr after stdout closed" });
      assert.equal(s.end, undefined, "the stream did not end at stdout's EOF");
      await proc.sendInput({ process: pidSel(s.pid), input: { input: { case: "stdin", value: Buffer.from("now\n") } } });
      let r = await withTimeout(s.done, 15000, "end");
      assert.equal(r.error, null, String(r.error));
      assert.equal(r.stdout, "first\n");
      assert.equal(r.stderr, "err-after-close\nbye now\n");
      assert.equal(r.end?.exitCode, 3);
      assert.equal(r.end?.status, "exit status 3");
      // Both outputs closed while it keeps running: the stream stays open until it exits.
      s = await startStream(proc, { process: { cmd: "/bin/sh", args: ["-c", "echo going-quiet; exec >&- 2>&-; read l; exit 4"] }, stdin: true });
      await waitFor(() => s.stdout.includes("going-quiet"), { what: "output before the close" });
      // The child closed both before blocking on stdin: envd sees both EOFs while it lives on.
      const listed = await proc.list({});
      assert.ok(listed.processes.some((p) => p.pid === s.pid), "still listed");
      assert.equal(s.end, undefined);
      await proc.sendInput({ process: pidSel(s.pid), input: { input: { case: "stdin", value: Buffer.from("x\n") } } });
      r = await withTimeout(s.done, 15000, "end");
      assert.equal(r.error, null, String(r.error));
      assert.equal(r.end?.exitCode, 4);
    }
  });
});

describe("the kernel's inotify limits (in a user namespace of envd's own; the host's sysctls are untouched)", () => {
  // envd runs as root of a new user namespace mapped to root, whose user.max_inotify_* limits
  // the test sets (they bound every process in that namespace, on top of the host's).
  const haveUserns = spawnSync("unshare", ["-U", "--map-root-user", "true"]).status === 0;
  const skip = haveUserns ? false : "unshare -U is not available";
  const inNs = (instances, watches) => ["unshare", "-U", "--map-root-user", "sh", "-c",
    `echo ${instances} > /proc/sys/user/max_inotify_instances && echo ${watches} > /proc/sys/user/max_inotify_watches && exec "$0" "$@"`];
  const setNs = (pid, name, value) => {
    const r = spawnSync("nsenter", ["-t", String(pid), "-U", "sh", "-c", `echo ${value} > /proc/sys/user/${name}`]);
    assert.equal(r.status, 0, r.stderr.toString());
  };
  /** Number of inotify watches envd holds (fdinfo lines of its inotify fds). */
  const watchCount = (pid) => readdirSync(`/proc/${pid}/fd`).reduce((n, fd) => {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== "anon_inode:inotify") return n;
      return n + readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8").split("\n").filter((l) => l.startsWith("inotify wd:")).length;
    } catch { return n; }
  }, 0);
  const errOf = (p) => p.then(() => null, (e) => e);

  async function watchUntilCreate(fs, path, name) {
    const ac = new AbortController();
    try {
      for await (const m of fs.watchDir({ path }, { signal: ac.signal })) {
        if (m.event.case === "start") writeFileSync(join(path, name), "");
        else if (m.event.case === "filesystem" && m.event.value.name === name) { ac.abort(); return true; }
      }
    } catch (e) {
      if (!(e instanceof ConnectError && e.code === Code.Canceled)) throw e;
      return true;
    }
    return false;
  }

  it("instance limit: WatchDir and CreateWatcher answer a clear internal error; once an instance is free the next watch works without a restart", { skip }, async () => {
    const d = await startEnvd({ testServices: false, prefix: inNs(0, 1000), extraArgs: ["--isnotfc", "-no-cgroups"] });
    try {
      const { fs } = clients(d, "2");
      const dir = freshDir("inst");
      const expected = /^error creating watcher: inotify_init1: too many open files \(envd's open files limit, or the kernel's inotify instance limit: fs\.inotify\.max_user_instances = \d+, user\.max_inotify_instances = 0 in envd's user namespace\)$/;
      let e = await errOf((async () => { for await (const m of fs.watchDir({ path: dir })) void m; })());
      assert.equal(e?.code, Code.Internal, String(e));
      assert.match(e.rawMessage, expected);
      e = await errOf(fs.createWatcher({ path: dir }));
      assert.equal(e?.code, Code.Internal, String(e));
      assert.match(e.rawMessage, expected);
      assert.equal((await fetch(d.url("/health"))).status, 204);
      setNs(d.pid, "max_inotify_instances", 1);
      assert.ok(await watchUntilCreate(fs, dir, "after"), "the watch works once an instance is allowed");
    } finally {
      await d.stop();
    }
  });

  it("watch limit: a recursive watch past it fails naming the limit and keeps none of its watches; the default budget is half the namespace's limit", { skip }, async () => {
    const dir = freshDir("wl");
    for (const s of ["a", "b", "c", "d", "e", "f"]) mkdirSync(join(dir, s));
    // Budget above the kernel's limit: the kernel refuses first.
    let d = await startEnvd({ testServices: false, prefix: inNs(128, 4), extraArgs: ["--isnotfc", "-no-cgroups", "--max-inotify-watches", "100"] });
    try {
      const { fs } = clients(d, "2");
      const e = await errOf(fs.createWatcher({ path: dir, recursive: true }));
      assert.equal(e?.code, Code.Internal, String(e));
      assert.match(e.rawMessage, /^error adding path .* to watcher: the kernel's inotify watch limit is reached \(fs\.inotify\.max_user_watches = \d+, user\.max_inotify_watches = 4 in envd's user namespace; raise it with sysctl -w fs\.inotify\.max_user_watches=N\)$/);
      assert.equal(watchCount(d.pid), 0, "the failed watch released what it had added");
      // What fits still works, and the daemon serves on.
      const { watcherId } = await fs.createWatcher({ path: join(dir, "a") });
      writeFileSync(join(dir, "a", "x"), "");
      const ev = await waitFor(async () => (await fs.getWatcherEvents({ watcherId })).events.find((x) => x.name === "x"), { what: "an event on the watch that fits" });
      assert.ok(ev);
      await fs.removeWatcher({ watcherId });
      assert.equal(watchCount(d.pid), 0);
      // Raised again (as an operator would): the recursive watch works, no restart.
      setNs(d.pid, "max_inotify_watches", 100);
      assert.ok(await watchUntilCreate(fs, dir, "y"));
    } finally {
      await d.stop();
    }
    // Default budget: half of the namespace's limit (not of the host's).
    d = await startEnvd({ testServices: false, prefix: inNs(128, 4), extraArgs: ["--isnotfc", "-no-cgroups"] });
    try {
      const { fs } = clients(d, "2");
      const e = await errOf(fs.createWatcher({ path: dir, recursive: true }));
      assert.match(e?.rawMessage ?? String(e), /envd's inotify watch budget of 2 watches is used up/);
    } finally {
      await d.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Client disconnects at every stage. After each case envd holds no more fds than before it (the
// process a complete Start request started is killed first: its pipes are legitimately envd's),
// no file under the test directory is open, and /health answers.

describe("client disconnects at every stage of a Start stream, an upload and a download (HTTP/1.1 and h2c)", () => {
  let d, dir, baseline;
  const BIG = 32 * 1024 * 1024;
  let big, old;
  before(async () => {
    d = await startEnvd({ testServices: false, extraArgs: ["--isnotfc", ...cgroupArgs(), "--process-retention-ms", "100"] });
    dir = freshDir("stages");
    big = join(dir, "big.bin");
    writeFileSync(big, randomBytes(BIG));
    old = Buffer.alloc(4096, "o");
    // Warm up what opens lazily, then take the baseline with no client connected.
    const r = await connectJson(d.port, "/process.Process/List", {});
    assert.equal(r.status, 200);
    let last = -1;
    let since = Date.now();
    await waitFor(() => {
      const n = d.openFds();
      if (n !== last) { last = n; since = Date.now(); }
      return Date.now() - since >= 300;
    }, { what: "a stable fd count" });
    baseline = last;
  });
  after(async () => { await d?.stop(); });

  // Kills the process of `tag` if there is one. A request that reached envd just before the
  // client left may still be spawning, and a spawned process is listed only once it has exec'd
  // (which can come after its cancelled Start has ended, on a loaded machine): signal again on
  // every poll until it is not listed and envd has no child left.
  const children = () => readdirSync(`/proc/${d.pid}/task`).flatMap((t) => {
    try {
      return readFileSync(`/proc/${d.pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  });
  const killTag = async (tag) => {
    await waitFor(async () => {
      const r = await connectJson(d.port, "/process.Process/SendSignal", { process: { tag }, signal: "SIGNAL_SIGKILL" });
      assert.ok(r.status === 200 || r.json?.code === "not_found", `SendSignal: ${r.status} ${r.body}`);
      const listed = (await connectJson(d.port, "/process.Process/List", {})).json?.processes?.some((p) => p.tag === tag);
      return !listed && children().length === 0;
    }, { what: `${tag} gone and envd without children (children: ${children().join(" ")})` });
  };
  const settled = async (what) => {
    await waitFor(() => d.openFds() <= baseline && openFilesUnder(d.pid, dir).length === 0, {
      timeoutMs: 10000, what: `${what}: fds back to ${baseline} (now ${d.openFds()}: ${d.fdTargets().join(", ")})`,
    });
    assert.equal((await h1Request(d.port, { method: "GET", path: "/health" })).status, 204);
  };
  /** Waits until the child of `tag` blocks writing its stdout: envd stopped reading (back-pressure). */
  const blockedOnPipe = async (tag) => {
    const p = (await connectJson(d.port, "/process.Process/List", {})).json.processes.find((x) => x.tag === tag);
    assert.ok(p, `${tag} listed`);
    await waitFor(() => readdirSync(`/proc/${p.pid}/task`).length && /pipe_write/.test(readFileSync(`/proc/${p.pid}/wchan`, "utf8")), { timeoutMs: 10000, what: `${tag} blocked writing its stdout` });
  };

  // Start requests logged so far: a request line is written when its handler has ended, so once
  // the count moves, a process the request started (if any) is listed.
  const startsLogged = () => (d.stderr().match(/"path":"\/process\.Process\/Start"/g) ?? []).length;
  const startBody = (tag) => {
    const json = Buffer.from(JSON.stringify({ process: { cmd: "/bin/sh", args: ["-c", "echo started; exec cat /dev/zero"] }, tag }));
    const env = Buffer.alloc(5);
    env.writeUInt32BE(json.length, 1);
    return Buffer.concat([env, json]);
  };
  const h1StartHead = (len) => Buffer.from(`POST /process.Process/Start HTTP/1.1\r\nhost: x\r\ncontent-type: application/connect+json\r\ncontent-length: ${len}\r\n\r\n`, "latin1");

  // HTTP/1.1 Start: the client closes after sending `cut` bytes of the request, or after a point
  // of the response.
  const h1StartStages = [
    ["nothing sent", (head, body) => ({ send: Buffer.alloc(0) })],
    ["half the head", (head) => ({ send: head.subarray(0, head.length >> 1) })],
    ["the head, no body", (head) => ({ send: head })],
    ["half the request message", (head, body) => ({ send: Buffer.concat([head, body.subarray(0, body.length >> 1)]) })],
    ["the whole request, at once", (head, body) => ({ send: Buffer.concat([head, body]), maybeStarted: true })],
    ["after the start event", (head, body) => ({ send: Buffer.concat([head, body]), wait: (c) => c.data.includes("started") || c.data.includes('"start"'), started: true })],
    ["while output is back-pressured (the client stopped reading)", (head, body) => ({ send: Buffer.concat([head, body]), wait: (c) => c.data.length > 0, started: true, pause: true })],
  ];
  for (const [stage, plan] of h1StartStages) {
    it(`Start over HTTP/1.1, client gone: ${stage}`, async () => {
      const tag = `h1-${stage.replace(/\W+/g, "-")}`;
      const body = startBody(tag);
      const p = plan(h1StartHead(body.length), body);
      const logged = startsLogged();
      const c = await rawConnect(d.port);
      c.sock.on("error", () => {});
      if (p.send.length) c.sock.write(p.send);
      if (p.wait) await c.until(p.wait, 10000, "the response so far");
      if (p.pause) {
        c.sock.pause();
        await blockedOnPipe(tag);
      }
      c.sock.destroy();
      const headSent = p.send.length >= h1StartHead(body.length).length;
      if (headSent) await waitFor(() => startsLogged() > logged, { what: "the Start handler to end" });
      if (p.started) {
        // A disconnect does not kill the process (as envd): it is still listed.
        const listed = (await connectJson(d.port, "/process.Process/List", {})).json.processes ?? [];
        assert.ok(listed.some((x) => x.tag === tag), "the process outlives its Start stream");
      } else if (!p.maybeStarted) {
        const listed = (await connectJson(d.port, "/process.Process/List", {})).json.processes ?? [];
        assert.ok(!listed.some((x) => x.tag === tag), "an incomplete request started nothing");
      }
      await killTag(tag);
      await settled(stage);
    });
  }

  const h2StartStages = [
    ["the headers, no body (RST_STREAM)", { body: "none" }],
    ["half the request message (RST_STREAM)", { body: "half" }],
    ["the whole request, at once (RST_STREAM)", { body: "all", maybeStarted: true }],
    ["after the start event (RST_STREAM)", { body: "all", waitStart: true, started: true }],
    ["while output is back-pressured (RST_STREAM)", { body: "all", waitStart: true, started: true, pause: true }],
    ["while output is back-pressured (the connection drops)", { body: "all", waitStart: true, started: true, pause: true, dropSession: true }],
  ];
  for (const [stage, p] of h2StartStages) {
    it(`Start over h2c, client gone: ${stage}`, async () => {
      const tag = `h2-${stage.replace(/\W+/g, "-")}`;
      const body = startBody(tag);
      const logged = startsLogged();
      const session = await h2Connect(d.port);
      session.on("error", () => {});
      const req = session.request({ ":method": "POST", ":path": "/process.Process/Start", "content-type": "application/connect+json" }, { endStream: false });
      req.on("error", () => {});
      let got = 0;
      req.on("data", (x) => { got += x.length; });
      if (p.body === "half") req.write(body.subarray(0, body.length >> 1));
      if (p.body === "all") req.end(body);
      if (p.body === "none") await new Promise((r) => session.ping(r)); // the HEADERS are out
      if (p.waitStart) await waitFor(() => got > 0, { what: "the start event" });
      if (p.pause) {
        req.pause();
        await blockedOnPipe(tag);
      }
      if (p.dropSession) session.destroy();
      else {
        await new Promise((r) => session.ping(r)); // everything before the reset is out
        req.close(http2.constants.NGHTTP2_CANCEL);
      }
      await waitFor(() => startsLogged() > logged, { what: "the Start handler to end" });
      const listed = (await connectJson(d.port, "/process.Process/List", {})).json.processes ?? [];
      if (p.started) assert.ok(listed.some((x) => x.tag === tag), "the process outlives its Start stream");
      else if (!p.maybeStarted) assert.ok(!listed.some((x) => x.tag === tag), "an incomplete request started nothing");
      await killTag(tag);
      if (!session.destroyed) session.close();
      await settled(stage);
    });
  }

  // Uploads: in place and atomic, over HTTP/1.1. The target is the old content, or (in place) a
  // prefix of the new content; the atomic target is never partial; nothing else is left behind.
  const UP = 1024 * 1024;
  const upStages = [
    ["half the head", (head) => head.subarray(0, head.length >> 1)],
    ["the head, no body", (head) => head],
    ["half the body", (head, body) => Buffer.concat([head, body.subarray(0, UP >> 1)])],
    ["all but the last byte", (head, body) => Buffer.concat([head, body.subarray(0, UP - 1)])],
    ["the whole body, at once", (head, body) => Buffer.concat([head, body])],
  ];
  for (const atomic of [false, true]) {
    for (const chunked of [false, true]) {
      for (const [stage, cut] of upStages) {
        it(`upload over HTTP/1.1 (${atomic ? "atomic" : "in place"}, ${chunked ? "chunked" : "Content-Length"}), client gone: ${stage}`, async () => {
          const target = join(dir, `up-${atomic}-${chunked}-${stage.replace(/\W+/g, "-")}`);
          writeFileSync(target, old);
          const data = randomBytes(UP);
          const qs = q({ path: target, ...(atomic ? { atomic: "true" } : {}) });
          let head, body;
          if (chunked) {
            head = Buffer.from(`POST /files?${qs} HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n`, "latin1");
            // One chunk per 64 KiB; the cut points fall inside chunks or at the end.
            const parts = [];
            for (let o = 0; o < UP; o += 65536) parts.push(Buffer.from(`${(65536).toString(16)}\r\n`), data.subarray(o, o + 65536), Buffer.from("\r\n"));
            parts.push(Buffer.from("0\r\n\r\n"));
            const whole = Buffer.concat(parts);
            // Map the stage's body cut onto the chunked encoding (same fraction of the data).
            const c = cut(Buffer.alloc(0), data).length;
            body = c >= UP ? whole : whole.subarray(0, Math.floor(c * whole.length / UP));
            const send = stage.startsWith("half the head") ? head.subarray(0, head.length >> 1) : stage === "the head, no body" ? head : Buffer.concat([head, body]);
            await sendAndDrop(send);
          } else {
            head = Buffer.from(`POST /files?${qs} HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: ${UP}\r\n\r\n`, "latin1");
            await sendAndDrop(cut(head, data));
          }
          await settled(stage);
          const now = readFileSync(target);
          if (atomic) assert.ok(now.equals(old) || now.equals(data), `atomic: old or all new, got ${now.length} bytes`);
          else assert.ok(now.equals(old) || data.subarray(0, now.length).equals(now), `in place: old or a prefix of the new content, got ${now.length} bytes`);
          assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith(".") || n.includes(".e2b-")), [], "no temporary file left");
        });
      }
    }
  }
  async function sendAndDrop(bytes) {
    const c = await rawConnect(d.port);
    c.sock.on("error", () => {});
    if (bytes.length) await new Promise((r) => c.sock.write(bytes, r));
    c.sock.destroy();
  }

  const h2UpStages = [["the headers, no body", 0], ["half the body", UP >> 1], ["all but the last byte", UP - 1]];
  for (const atomic of [false, true]) {
    for (const [stage, n] of h2UpStages) {
      for (const how of ["RST_STREAM", "the connection drops"]) {
        it(`upload over h2c (${atomic ? "atomic" : "in place"}), client gone (${how}): ${stage}`, async () => {
          const target = join(dir, `h2up-${atomic}-${n}-${how.replace(/\W+/g, "-")}`);
          writeFileSync(target, old);
          const data = randomBytes(UP);
          const session = await h2Connect(d.port);
          session.on("error", () => {});
          const req = session.request({ ":method": "POST", ":path": `/files?${q({ path: target, ...(atomic ? { atomic: "true" } : {}) })}`, "content-type": "application/octet-stream", "content-length": String(UP) }, { endStream: false });
          req.on("error", () => {});
          if (n) await new Promise((r) => req.write(data.subarray(0, n), r));
          await new Promise((r) => session.ping(r));
          if (how === "RST_STREAM") {
            req.close(http2.constants.NGHTTP2_CANCEL);
            await new Promise((r) => session.ping(r));
            session.close();
          } else {
            session.destroy();
          }
          await settled(stage);
          const now = readFileSync(target);
          if (atomic) assert.ok(now.equals(old), "atomic: the old content");
          else assert.ok(now.equals(old) || data.subarray(0, now.length).equals(now), `in place: old or a prefix of the new content, got ${now.length} bytes`);
          assert.deepEqual(readdirSync(dir).filter((x) => x.startsWith(".") || x.includes(".e2b-")), []);
        });
      }
    }
  }

  // Downloads: identity (sendfile), a range, gzip; HTTP/1.1 and h2c.
  const dlVariants = [
    ["identity", {}],
    ["a range", { range: `bytes=1000-${BIG - 1000}` }],
    ["gzip", { "accept-encoding": "gzip" }],
  ];
  const dlStages = [
    ["half the head", { half: true }],
    ["the whole head, at once", {}],
    ["after the response head", { until: "head" }],
    ["mid body", { until: "body" }],
  ];
  for (const [variant, headers] of dlVariants) {
    for (const [stage, s] of dlStages) {
      it(`download over HTTP/1.1 (${variant}), client gone: ${stage}`, async () => {
        let head = `GET /files?${q({ path: big })} HTTP/1.1\r\nhost: x\r\n`;
        for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
        head += "\r\n";
        const c = await rawConnect(d.port);
        c.sock.on("error", () => {});
        c.sock.write(s.half ? head.slice(0, head.length >> 1) : head);
        if (s.until === "head") await c.until((x) => x.data.includes("\r\n\r\n"), 10000, "the head");
        if (s.until === "body") await c.until((x) => x.data.length > 1024 * 1024, 10000, "1 MiB of body");
        c.sock.destroy();
        await settled(stage);
      });
    }
    for (const [stage, until] of [["after the response head", "head"], ["mid body", "body"]]) {
      for (const how of ["RST_STREAM", "the connection drops"]) {
        it(`download over h2c (${variant}), client gone (${how}): ${stage}`, async () => {
          const session = await h2Connect(d.port);
          session.on("error", () => {});
          const req = session.request({ ":method": "GET", ":path": `/files?${q({ path: big })}`, ...headers });
          req.on("error", () => {});
          let got = 0;
          const head = new Promise((r) => req.on("response", r));
          req.on("data", (x) => { got += x.length; });
          await head;
          if (until === "body") await waitFor(() => got > 1024 * 1024, { what: "1 MiB of body" });
          else req.pause();
          if (how === "RST_STREAM") {
            req.close(http2.constants.NGHTTP2_CANCEL);
            await new Promise((r) => session.ping(r));
            session.close();
          } else {
            session.destroy();
          }
          await settled(stage);
        });
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------

describe("a full disk during uploads whose length is not known before writing", () => {
  // files_upload covers a known length (507 before truncating, old content kept) and atomic mode.
  // Here: in place with no length to reserve (chunked, h2c without content-length, multipart):
  // 507 with envd's words, and what is left is a prefix of the new content (never old and new
  // mixed); no fd left open. And no inode left: 507 "not enough inodes available".
  let d, small;
  let mounted = false;
  before(async () => {
    small = mkdtempSync("/tmp/envd-faults-full-");
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m,nr_inodes=16", "tmpfs", small]);
    mounted = m.status === 0;
    d = await startEnvd({ testServices: false, extraArgs: ["--isnotfc", "-no-cgroups"] });
  });
  after(async () => {
    await d?.stop();
    if (mounted) spawnSync("umount", ["-l", small]);
    rmSync(small, { recursive: true, force: true });
  });
  const freeBytes = () => Number(spawnSync("stat", ["-f", "-c", "%a*%S", small]).stdout.toString().trim().split("*").reduce((a, b) => a * b));
  const json = (b) => JSON.parse(b.toString("utf8"));

  it("in place, chunked / h2c without length / multipart: 507 'not enough disk space available'; a prefix of the new content is left", async (t) => {
    if (!mounted) return t.skip("cannot mount a tmpfs");
    const old = Buffer.alloc(200 * 1024, "o");
    const cases = ["chunked", "h2c", "multipart"];
    for (const how of cases) {
      const p = join(small, `inplace-${how}`);
      writeFileSync(p, old);
      const data = randomBytes(freeBytes() + 256 * 1024); // more than is free once `old` is truncated
      let status, body;
      if (how === "chunked") {
        const parts = [];
        for (let o = 0; o < data.length; o += 65536) parts.push(data.subarray(o, o + 65536));
        const r = await h1Request(d.port, { path: `/files?${q({ path: p })}`, headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" }, body: parts });
        ({ status, body } = r);
      } else if (how === "h2c") {
        const s = await h2Connect(d.port);
        const r = await new Promise((resolve, reject) => {
          const req = s.request({ ":method": "POST", ":path": `/files?${q({ path: p })}`, "content-type": "application/octet-stream" });
          const chunks = [];
          let st;
          req.on("response", (h) => { st = h[":status"]; });
          req.on("data", (c) => chunks.push(c));
          req.on("end", () => resolve({ status: st, body: Buffer.concat(chunks) }));
          req.on("error", reject);
          req.end(data);
        });
        s.close();
        ({ status, body } = r);
      } else {
        const boundary = "----faultsboundary";
        const mp = Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${p}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
          data, Buffer.from(`\r\n--${boundary}--\r\n`),
        ]);
        const r = await h1Request(d.port, { path: "/files", headers: { "content-type": `multipart/form-data; boundary=${boundary}` }, body: mp });
        ({ status, body } = r);
      }
      assert.equal(status, 507, `${how}: ${status} ${body}`);
      assert.equal(json(body).code, 507);
      assert.match(json(body).message, /not enough disk space available$/, how);
      const now = readFileSync(p);
      assert.ok(now.length < data.length && data.subarray(0, now.length).equals(now), `${how}: a prefix of the new content (${now.length} bytes), never the old one mixed in`);
      await waitFor(() => openFilesUnder(d.pid, small).length === 0, { what: `${how}: the file closed` });
      rmSync(p);
    }
    assert.equal((await fetch(d.url("/health"))).status, 204);
  });

  it("no inode left: 507 'not enough inodes available'; existing files are untouched", async (t) => {
    if (!mounted) return t.skip("cannot mount a tmpfs");
    const dir = join(small, "inodes");
    mkdirSync(dir);
    const made = [];
    for (let i = 0; ; i++) {
      try { writeFileSync(join(dir, `f${i}`), "x"); made.push(join(dir, `f${i}`)); } catch (e) { assert.equal(e.code, "ENOSPC"); break; }
    }
    try {
      for (const atomic of [false, true]) {
        const r = await h1Request(d.port, { path: `/files?${q({ path: join(dir, "new"), ...(atomic ? { atomic: "true" } : {}) })}`, headers: { "content-type": "application/octet-stream" }, body: "data" });
        assert.equal(r.status, 507, `${atomic ? "atomic" : "in place"}: ${r.status} ${r.body}`);
        assert.match(json(r.body).message, /^not enough inodes available: /);
        assert.ok(!existsSync(join(dir, "new")));
      }
      // An existing file can still be rewritten in place (no inode needed).
      const r = await h1Request(d.port, { path: `/files?${q({ path: made[0] })}`, headers: { "content-type": "application/octet-stream" }, body: "y" });
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(readFileSync(made[0], "utf8"), "y");
      assert.deepEqual(readdirSync(dir).length, made.length, "nothing else was created");
    } finally {
      for (const f of made) rmSync(f, { force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("out of fds, seen by requests on a connection opened before", () => {
  // bounds.test checks the accept back-off and its log lines. Here: what a client that is already
  // connected gets while envd has no fd left (clear errors, nothing wedged), and that everything
  // works again once the fds are free. UBSan's checks need a free fd: release build only.
  const skip = process.env.ENVD_SANITIZED === "ON" ? "UBSan cannot run its checks without a free fd" : false;
  it("Start, WatchDir, ListDir, uploads and downloads fail cleanly at the limit and work once fds free up", { skip, timeout: 60000 }, async () => {
    const d = await startEnvd({ testServices: false, prefix: ["prlimit", "--nofile=64:64", "--"], extraArgs: ["--isnotfc", "-no-cgroups"] });
    const dir = freshDir("fds");
    writeFileSync(join(dir, "f"), "content");
    const conns = [];
    try {
      const { proc, fs } = clients(d, "2");
      assert.deepEqual((await proc.list({})).processes, []); // the h2c session is open
      const rest = await h2Connect(d.port);
      rest.on("error", () => {});
      const baseline = d.openFds();
      for (let i = 0; i < 80; i++) {
        const c = await rawConnect(d.port);
        c.sock.on("error", () => {});
        conns.push(c);
      }
      await waitFor(() => d.openFds() >= 64, { what: "envd's fd table full" });
      const errOf = (p) => p.then(() => null, (e) => e);
      const startErr = await errOf((async () => { for await (const m of proc.start({ process: { cmd: "/bin/true" } })) void m; })());
      assert.equal(startErr?.code, Code.Internal, String(startErr));
      const watchErr = await errOf((async () => { for await (const m of fs.watchDir({ path: dir })) void m; })());
      assert.equal(watchErr?.code, Code.Internal, String(watchErr));
      assert.match(watchErr.rawMessage, /too many open files/);
      const listErr = await errOf(fs.listDir({ path: dir }));
      assert.equal(listErr?.code, Code.Internal, String(listErr));
      assert.match(listErr.rawMessage, /^error reading directory .*: too many open files$/);
      assert.match(startErr.rawMessage, /^error starting process '\/bin\/true': pipe: too many open files$/);
      assert.ok((await proc.list({})).processes.length === 0, "unary calls that need no fd still work");
      // Downloads and uploads on a session opened before the table filled.
      const dl = await h2Request(rest, { method: "GET", path: `/files?${q({ path: join(dir, "f") })}` });
      const up = await h2Request(rest, { path: `/files?${q({ path: join(dir, "g") })}`, headers: { "content-type": "application/octet-stream" }, body: "new" });
      assert.equal(dl.status, 500, dl.body.toString());
      assert.match(dl.body.toString(), /too many open files/);
      assert.equal(up.status, 500, up.body.toString());
      assert.match(up.body.toString(), /too many open files/);
      assert.ok(!existsSync(join(dir, "g")));
      // Free the fds: everything works again on the old connection and on new ones.
      for (const c of conns) c.sock.destroy();
      await waitFor(async () => {
        const r = await h1Request(d.port, { method: "GET", path: "/health", timeoutMs: 2000 }).catch(() => null);
        return r?.status === 204;
      }, { timeoutMs: 15000, what: "/health once fds are free" });
      const st = await startStream(proc, { process: { cmd: "/bin/echo", args: ["ok"] } });
      assert.equal((await st.done).stdout, "ok\n");
      assert.equal((await fs.listDir({ path: dir })).entries.length, 1);
      const ac = new AbortController();
      try {
        for await (const m of fs.watchDir({ path: dir }, { signal: ac.signal })) {
          if (m.event.case === "start") ac.abort();
        }
      } catch (e) {
        assert.equal(e.code, Code.Canceled, String(e));
      }
      assert.equal((await h2Request(rest, { method: "GET", path: `/files?${q({ path: join(dir, "f") })}` })).status, 200);
      rest.close();
      await waitFor(() => d.openFds() <= baseline + 1, { timeoutMs: 10000, what: `fds back near ${baseline} (inotify fd opened since)` });
      assert.ok(d.alive());
    } finally {
      for (const c of conns) c.sock.destroy();
      await d.stop();
    }
  });
});
