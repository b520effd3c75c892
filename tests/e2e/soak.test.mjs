// A bounded soak (issue "conformance, faults, soak": Load). Many clients over HTTP/1.1 and h2c
// mix unary calls (process.List, filesystem.Stat), Start streams (spawns with output), uploads
// (in place and atomic), downloads checked byte for byte, and WatchDir streams that must see the
// file they create. Every request must succeed. envd's fds, threads and RSS are sampled at rest
// after a warm-up and again at rest after the run; growth must stay within the bounds below.
//
// CI form: ENVD_SOAK_SECONDS (default 75) of load. Long form: ENVD_LONG=1 (1800 s), run by hand:
//   ENVD_LONG=1 ctest -R e2e.soak -V        (in build/)
// The figures are printed as `# soak …` lines.
import { describe, before, after, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import http2 from "node:http2";
import { mkdtempSync, rmSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes, createHash } from "node:crypto";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { startEnvd, service, waitFor, delay, withTimeout, HOST } from "./lib/envd.mjs";

const LONG = process.env.ENVD_LONG === "1";
const SECONDS = Number(process.env.ENVD_SOAK_SECONDS ?? (LONG ? 1800 : 75));
const WARMUP_SECONDS = Math.min(10, Math.max(3, Math.round(SECONDS / 10)));
const WORKERS = Number(process.env.ENVD_SOAK_WORKERS ?? 12); // half HTTP/1.1, half h2c
const OP_TIMEOUT_MS = 30000;
const BLOCKING_THREADS = 8;

// The bounds, measured at rest (no client connected, every process ended and past retention,
// after a memory trim) before and after the load:
//   fds:     end ≤ start (every connection, pipe, pidfd, file and watch is closed again);
//   threads: by name (envd names each): the blocking pool ("envd-blocking", started on demand)
//            never past --blocking-threads, and otherwise exactly the fixed ones — the loop
//            ("envd"), the log sink ("envd-log") and the port forwarder ("envd-forward");
//   RSS:     end − start ≤ 8 MiB (the CI form) / 16 MiB (the long form).
const RSS_BOUND = (LONG ? 16 : 8) * 1024 * 1024;
// ASan keeps freed memory in quarantine: the RSS bound is checked in the release build only.
const memoryBounded = process.env.ENVD_SANITIZED !== "ON";
const FIXED_THREADS = { "envd": 1, "envd-log": 1, "envd-forward": 1 };

let envd, root;
let logTail = "";
const Process = () => service("process.Process");
const Filesystem = () => service("filesystem.Filesystem");

// envd's open fds, leaving out its own short reads of procfs (the trim tick reads
// /proc/self/smaps every --trim-interval-ms: under ASan, whose mappings make that file huge, a
// sample caught it open and counted it as growth).
function openFds(pid) {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = "";
    try { target = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; } // closed meanwhile
    if (!target.startsWith("/proc/")) n++;
  }
  return n;
}

function sample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    fds: openFds(pid),
    threads: Number(/Threads:\s+(\d+)/.exec(status)[1]),
    rss: Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024,
  };
}
/** envd's threads by name (comm): { name: count }. */
function threadNames(pid) {
  const names = {};
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    let n = "?";
    try { n = readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim(); } catch {}
    names[n] = (names[n] ?? 0) + 1;
  }
  return names;
}
/**
 * The thread bound: at most BLOCKING_THREADS pool threads, and no other thread than the fixed
 * ones. Under load (`atRest` false) only the counts: a thread just started still carries the
 * loop's name until it names itself.
 */
function threadsWithinBounds(names, atRest = true) {
  const { "envd-blocking": pool = 0, ...rest } = names;
  const fixed = Object.values(FIXED_THREADS).reduce((a, c) => a + c, 0);
  const total = Object.values(names).reduce((a, c) => a + c, 0);
  if (!atRest) return pool <= BLOCKING_THREADS && total <= BLOCKING_THREADS + fixed;
  return pool <= BLOCKING_THREADS && Object.entries(rest).every(([n, c]) => c <= (FIXED_THREADS[n] ?? 0));
}
const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`;

/** One client: its own connection pool (an HTTP/1.1 keep-alive agent, or an h2c session). */
class Worker {
  constructor(label, id, h2) {
    this.id = id;
    this.h2 = h2;
    this.name = `${label}${id}`;
    this.dir = join(root, this.name);
    mkdirSync(join(this.dir, "watched"), { recursive: true });
    this.counts = {};
    this.failures = [];
    this.seq = 0;
    this.open();
  }

  open() {
    const baseUrl = envd.baseUrl;
    if (this.h2) {
      this.sm = new Http2SessionManager(baseUrl);
      this.transport = createConnectTransport({ baseUrl, httpVersion: "2", sessionManager: this.sm, useBinaryFormat: this.id % 4 === 1 });
      this.session = http2.connect(baseUrl);
      this.session.on("error", (e) => this.fail("h2 session", e));
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      this.transport = createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent: this.agent }, useBinaryFormat: this.id % 4 === 0 });
    }
    this.proc = createClient(Process(), this.transport);
    this.fs = createClient(Filesystem(), this.transport);
  }

  close() {
    if (this.h2) {
      this.sm.abort();
      this.session.close();
    } else {
      this.agent.destroy();
    }
  }

  fail(op, e) {
    this.failures.push(`${this.h2 ? "h2c" : "h1"} worker ${this.name} ${op}: ${e?.stack ?? e}`);
  }

  /** A REST request on this worker's connections. Resolves { status, body }. */
  rest(method, path, headers, body) {
    if (this.h2) {
      return new Promise((resolve, reject) => {
        const req = this.session.request({ ":method": method, ":path": path, ...headers }, { endStream: body === undefined });
        const chunks = [];
        let status;
        req.on("response", (h) => { status = h[":status"]; });
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => resolve({ status, body: Buffer.concat(chunks) }));
        req.on("error", reject);
        if (body !== undefined) req.end(body);
      });
    }
    return new Promise((resolve, reject) => {
      const req = http.request({ host: HOST, port: envd.port, method, path, headers, agent: this.agent }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  async unary() {
    if (Math.random() < 0.5) {
      await this.proc.list({});
    } else {
      const r = await this.fs.stat({ path: this.dir });
      assert.equal(r.entry?.name, this.name);
    }
  }

  async start() {
    const n = 1 + Math.floor(Math.random() * 100000);
    let stdout = 0;
    let end;
    let started = false;
    for await (const res of this.proc.start({ process: { cmd: "/bin/sh", args: ["-c", `printf %0${n}d 0; echo done >&2`] } })) {
      const ev = res.event?.event;
      if (ev?.case === "start") started = true;
      else if (ev?.case === "data" && ev.value.output.case === "stdout") stdout += ev.value.output.value.length;
      else if (ev?.case === "end") end = ev.value;
    }
    assert.ok(started, "no start event");
    assert.equal(stdout, n, "stdout length");
    assert.ok(end?.exited && end.exitCode === 0, `end ${JSON.stringify(end)}`);
  }

  async upload() {
    const data = randomBytes(1 + Math.floor(Math.random() * 256 * 1024));
    const path = join(this.dir, `f${this.seq++ % 8}`);
    const atomic = Math.random() < 0.5;
    const q = new URLSearchParams({ path, ...(atomic ? { atomic: "true" } : {}) });
    const up = await this.rest("POST", `/files?${q}`, { "content-type": "application/octet-stream", "content-length": String(data.length) }, data);
    assert.equal(up.status, 200, `upload: ${up.status} ${up.body}`);
    const down = await this.rest("GET", `/files?${new URLSearchParams({ path })}`, {});
    assert.equal(down.status, 200, `download: ${down.status}`);
    assert.equal(createHash("sha256").update(down.body).digest("hex"), createHash("sha256").update(data).digest("hex"), "downloaded content");
    this.count("download");
  }

  async watch() {
    const ac = new AbortController();
    const d = join(this.dir, "watched");
    const name = `n${this.seq++}`;
    let seen = false;
    try {
      for await (const res of this.fs.watchDir({ path: d }, { signal: ac.signal })) {
        const ev = res.event;
        if (ev.case === "start") writeFileSync(join(d, name), "x");
        else if (ev.case === "filesystem" && ev.value.name === name) {
          seen = true;
          ac.abort();
        }
      }
    } catch (e) {
      if (!(seen && e instanceof ConnectError && e.code === Code.Canceled)) throw e;
    }
    assert.ok(seen, "the watch saw its file");
    rmSync(join(d, name), { force: true });
  }

  count(op) {
    this.counts[op] = (this.counts[op] ?? 0) + 1;
  }

  async run(until) {
    const ops = [["unary", 4], ["start", 2], ["upload", 2], ["watch", 1]];
    const total = ops.reduce((a, [, w]) => a + w, 0);
    while (Date.now() < until) {
      let r = Math.random() * total;
      const [op] = ops.find(([, w]) => (r -= w) < 0);
      try {
        await withTimeout(this[op](), OP_TIMEOUT_MS, `${op}`);
        this.count(op);
      } catch (e) {
        this.fail(op, e);
        this.count(`${op}.failed`);
      }
    }
  }
}

/** Waits until envd is at rest: its fd count is stable for 1 s, then one more trim interval. */
async function atRest() {
  let last = -1;
  let stableSince = Date.now();
  await waitFor(() => {
    const n = sample(envd.pid).fds;
    if (n !== last) { last = n; stableSince = Date.now(); }
    return Date.now() - stableSince >= 1000;
  }, { timeoutMs: 20000, intervalMs: 100, what: "a stable fd count" });
  await delay(1200); // two --trim-interval-ms periods: freed heap handed back
  return sample(envd.pid);
}

async function phase(seconds, label) {
  const workers = Array.from({ length: WORKERS }, (_, i) => new Worker(label, i, i % 2 === 1));
  const peak = { fds: 0, threads: 0, rss: 0 };
  const threadsOver = [];
  const sampler = setInterval(() => {
    const s = sample(envd.pid);
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], s[k]);
    const names = threadNames(envd.pid);
    if (!threadsWithinBounds(names, false)) threadsOver.push(names);
  }, 500);
  const until = Date.now() + seconds * 1000;
  await Promise.all(workers.map((w) => w.run(until)));
  clearInterval(sampler);
  for (const w of workers) w.close();
  const counts = {};
  for (const w of workers) for (const [k, v] of Object.entries(w.counts)) counts[k] = (counts[k] ?? 0) + v;
  return { counts, failures: workers.flatMap((w) => w.failures), peak, threadsOver };
}

describe(`soak: ${WORKERS} clients (HTTP/1.1 and h2c) for ${SECONDS} s`, () => {
  before(async () => {
    root = mkdtempSync("/tmp/envd-soak-");
    envd = await startEnvd({
      testServices: false,
      extraArgs: ["--isnotfc", "-no-cgroups", "--process-retention-ms", "300", "--trim-interval-ms", "500",
        "--blocking-threads", String(BLOCKING_THREADS)],
    });
    // One log line per request: keep only the last 64 KiB for diagnostics, not the whole run's.
    envd.child.stderr.removeAllListeners("data");
    envd.child.stderr.on("data", (d) => { logTail = (logTail + d).slice(-65536); });
  });
  after(async () => {
    await envd?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("zero failed requests; fds, threads and RSS at rest stay within the bounds", { timeout: (SECONDS + WARMUP_SECONDS + 120) * 1000 }, async () => {
    const warm = await phase(WARMUP_SECONDS, "warm");
    assert.deepEqual(warm.failures, [], "failures during the warm-up");
    const start = await atRest();
    const t0 = Date.now();
    const run = await phase(SECONDS, "w");
    const elapsed = (Date.now() - t0) / 1000;
    // At rest again: fds come back (wait for the last closes), then the sample.
    await waitFor(() => sample(envd.pid).fds <= start.fds, { timeoutMs: 20000, what: `fds back to ${start.fds}` }).catch(() => {});
    const end = await atRest();
    const requests = Object.entries(run.counts).filter(([k]) => !k.endsWith(".failed")).reduce((a, [, v]) => a + v, 0);
    const failed = Object.entries(run.counts).filter(([k]) => k.endsWith(".failed")).reduce((a, [, v]) => a + v, 0);
    console.log(`# soak ${elapsed.toFixed(0)} s, ${WORKERS} clients: ${requests} operations (${(requests / elapsed).toFixed(0)}/s), ${failed} failed; ${JSON.stringify(run.counts)}`);
    const names = threadNames(envd.pid);
    console.log(`# soak threads at rest by name: ${JSON.stringify(names)}`);
    console.log(`# soak fds ${start.fds} → ${end.fds} (peak ${run.peak.fds}); threads ${start.threads} → ${end.threads} (peak ${run.peak.threads}); RSS ${mib(start.rss)} → ${mib(end.rss)} (peak ${mib(run.peak.rss)})`);
    assert.deepEqual(run.failures.slice(0, 10), [], `${run.failures.length} failures`);
    assert.equal(failed, 0);
    assert.ok(envd.alive(), logTail.slice(-4000));
    assert.ok(end.fds <= start.fds, `fds grew: ${start.fds} → ${end.fds}\n${envd.fdTargets().join("\n")}`);
    assert.deepEqual(run.threadsOver.slice(0, 3), [], "threads past their bounds under load");
    assert.ok(threadsWithinBounds(names), `threads: ${start.threads} → ${end.threads} ${JSON.stringify(names)}`);
    if (memoryBounded) assert.ok(end.rss - start.rss <= RSS_BOUND, `RSS grew by ${mib(end.rss - start.rss)} (bound ${mib(RSS_BOUND)})`);
  });
});
