// Directory watching (contract §5.7, §5.8, issue 9) through connect-node: WatchDir events and their
// order, recursive pick-up of new directories (mkdir -p faster than a watch lands), include_entry,
// keepalives, client cancel, validation errors, a 20,000-file burst delivered completely, a stalled
// client ending with data_loss while another watcher keeps working, the watch budget, polling
// watchers (CreateWatcher / GetWatcherEvents / RemoveWatcher, eviction when idle and under pressure)
// and a leak test.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fsn from "node:fs";
import path from "node:path";
import http2 from "node:http2";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  it, startEnvd, service, waitFor, delay, withTimeout, envelope, parseConnectStream,
} from "./lib/envd.mjs";
import { errOf } from "./lib/clients.mjs";

const LONG = process.env.ENVD_LONG === "1";
const ET = { CREATE: 1, WRITE: 2, REMOVE: 3, RENAME: 4, CHMOD: 5 };
const ETN = Object.fromEntries(Object.entries(ET).map(([k, v]) => [v, k]));

const fsClient = (envd, opts = {}) =>
  createClient(service("filesystem.Filesystem"), createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "1.1", ...opts }));

/**
 * Opens a WatchDir stream and collects its events. `started` resolves at the start event;
 * `done` resolves { error } when the stream ends; `events` is the list of filesystem events.
 */
function watch(fs, req, { headers, onEvent } = {}) {
  const ac = new AbortController();
  const w = { events: [], keepalives: 0, ac, error: null, ended: false };
  let onStart;
  w.started = new Promise((r) => { onStart = r; });
  w.done = (async () => {
    try {
      for await (const res of fs.watchDir(req, { signal: ac.signal, headers })) {
        if (res.event.case === "start") onStart();
        else if (res.event.case === "keepalive") w.keepalives++;
        else if (res.event.case === "filesystem") {
          w.events.push(res.event.value);
          onEvent?.(res.event.value);
        }
      }
    } catch (e) {
      w.error = ConnectError.from(e);
    }
    w.ended = true;
    onStart();
    return w;
  })();
  w.stop = async () => { ac.abort(); await w.done; };
  w.names = () => w.events.map((e) => `${ETN[e.type]} ${e.name}`);
  return w;
}

async function startedWatch(fs, req, opts) {
  const w = watch(fs, req, opts);
  await withTimeout(w.started, 15000, "start event");
  if (w.ended) throw w.error ?? new Error("stream ended before start");
  return w;
}

/** envd's open fds and inotify watches (from /proc/<pid>/fdinfo). */
function fdCounts(pid) {
  const fds = fsn.readdirSync(`/proc/${pid}/fd`);
  let watches = 0;
  for (const fd of fds) {
    let info;
    try { info = fsn.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"); } catch { continue; }
    watches += (info.match(/^inotify wd:/gm) ?? []).length;
  }
  return { fds: fds.length, watches };
}

/** Creates `n` empty files in `dir` from another process (so this one keeps reading). */
function createFiles(dir, n, prefix = "f") {
  const py = `import os,sys\nd,n,p=sys.argv[1],int(sys.argv[2]),sys.argv[3]\nfor i in range(n):\n  os.close(os.open(os.path.join(d,p+str(i)),os.O_CREAT|os.O_WRONLY,0o644))\n`;
  return new Promise((resolve, reject) =>
    execFile("python3", ["-c", py, dir, String(n), prefix], (err) => (err ? reject(err) : resolve())));
}

let envd, fs, root;
const p = (...parts) => path.join(root, ...parts);
let seq = 0;
const freshDir = () => {
  const d = p(`d${++seq}`);
  fsn.mkdirSync(d);
  return d;
};

before(async () => {
  envd = await startEnvd({ testServices: false, extraArgs: ["-no-cgroups", "--watcher-idle-timeout-ms", "600000"] });
  fs = fsClient(envd);
  root = fsn.mkdtempSync("/tmp/envd-e2e-watch-");
});

after(async () => {
  await envd?.stop();
  if (root) fsn.rmSync(root, { recursive: true, force: true });
});

describe("WatchDir", () => {
  it("create, write, chmod, rename, remove: one event per operation, names relative to the dir", async () => {
    const d = freshDir();
    const w = await startedWatch(fs, { path: d });
    fsn.writeFileSync(path.join(d, "a.txt"), "x"); // CREATE + WRITE
    fsn.chmodSync(path.join(d, "a.txt"), 0o600); // CHMOD
    fsn.renameSync(path.join(d, "a.txt"), path.join(d, "b.txt")); // RENAME a + CREATE b
    fsn.unlinkSync(path.join(d, "b.txt")); // REMOVE
    await waitFor(() => w.events.length >= 6, { what: "6 events" });
    await delay(50);
    assert.deepEqual(w.names(), ["CREATE a.txt", "WRITE a.txt", "CHMOD a.txt", "RENAME a.txt", "CREATE b.txt", "REMOVE b.txt"]);
    assert.ok(w.events.every((e) => e.entry === undefined), "no entry without include_entry");
    await w.stop();
  });

  it("not recursive: a new subdirectory is reported, what happens inside it is not", async () => {
    const d = freshDir();
    const w = await startedWatch(fs, { path: d });
    fsn.mkdirSync(path.join(d, "sub"));
    fsn.writeFileSync(path.join(d, "sub", "inner"), "");
    fsn.writeFileSync(path.join(d, "marker"), "");
    await waitFor(() => w.names().includes("CREATE marker"), { what: "marker" });
    assert.deepEqual(w.names(), ["CREATE sub", "CREATE marker"]);
    await w.stop();
  });

  it("recursive: existing and new subdirectories, mkdir -p reported once per level", async () => {
    const d = freshDir();
    fsn.mkdirSync(path.join(d, "old", "deep"), { recursive: true });
    const w = await startedWatch(fs, { path: d, recursive: true });
    fsn.writeFileSync(path.join(d, "old", "deep", "f1"), "");
    fsn.mkdirSync(path.join(d, "a", "b", "c"), { recursive: true });
    fsn.writeFileSync(path.join(d, "a", "b", "c", "f2"), "");
    await waitFor(() => w.names().includes("CREATE a/b/c/f2"), { what: "a/b/c/f2" });
    fsn.writeFileSync(path.join(d, "a", "b", "c", "f3"), "");
    await waitFor(() => w.names().includes("CREATE a/b/c/f3"), { what: "a/b/c/f3" });
    await delay(100);
    const creates = w.names().filter((n) => n.startsWith("CREATE"));
    assert.deepEqual([...creates].sort(), ["CREATE a", "CREATE a/b", "CREATE a/b/c", "CREATE a/b/c/f2", "CREATE a/b/c/f3", "CREATE old/deep/f1"]);
    fsn.rmSync(path.join(d, "a"), { recursive: true });
    await waitFor(() => w.names().includes("REMOVE a"), { what: "REMOVE a" });
    await delay(50);
    assert.equal(w.names().filter((n) => n === "REMOVE a").length, 1, "a directory's removal is reported once");
    assert.equal(w.error, null);
    await w.stop();
  });

  it("recursive: 20 nested mkdir -p trees, every level and file reported exactly once", async () => {
    const d = freshDir();
    const w = await startedWatch(fs, { path: d, recursive: true });
    const want = [];
    for (let i = 0; i < 20; i++) {
      fsn.mkdirSync(path.join(d, `t${i}`, "x", "y"), { recursive: true });
      fsn.writeFileSync(path.join(d, `t${i}`, "x", "y", "f"), "");
      want.push(`CREATE t${i}`, `CREATE t${i}/x`, `CREATE t${i}/x/y`, `CREATE t${i}/x/y/f`);
    }
    await waitFor(() => want.every((n) => w.names().includes(n)), { what: "all creates" });
    await delay(100);
    const creates = w.names().filter((n) => n.startsWith("CREATE"));
    assert.deepEqual([...creates].sort(), [...want].sort());
    await w.stop();
  });

  it("include_entry: EntryInfo for create, write and chmod; never for remove or rename", async () => {
    const d = freshDir();
    const w = await startedWatch(fs, { path: d, includeEntry: true });
    fsn.writeFileSync(path.join(d, "e.txt"), "hello");
    await waitFor(() => w.names().includes("WRITE e.txt"), { what: "write" });
    fsn.renameSync(path.join(d, "e.txt"), path.join(d, "f.txt"));
    fsn.unlinkSync(path.join(d, "f.txt"));
    fsn.writeFileSync(path.join(d, "f.txt"), ""); // re-created: the REMOVE still has no entry
    await waitFor(() => w.names().filter((n) => n === "CREATE f.txt").length === 2, { what: "re-create" });
    const byName = (n) => w.events.filter((e) => `${ETN[e.type]} ${e.name}` === n);
    const create = byName("CREATE e.txt")[0];
    assert.equal(create.entry?.name, "e.txt");
    assert.equal(create.entry?.path, path.join(d, "e.txt"));
    assert.equal(byName("WRITE e.txt")[0].entry?.type, 1);
    assert.equal(byName("RENAME e.txt")[0].entry, undefined);
    assert.equal(byName("REMOVE f.txt")[0].entry, undefined);
    await w.stop();
  });

  it("keepalives at Keepalive-Ping-Interval", { timeout: 15000 }, async () => {
    const d = freshDir();
    const w = await startedWatch(fs, { path: d }, { headers: { "keepalive-ping-interval": "1" } });
    await waitFor(() => w.keepalives >= 2, { timeoutMs: 6000, what: "two keepalives" });
    await w.stop();
  });

  it("the deadline ends the stream with deadline_exceeded", async () => {
    const d = freshDir();
    const w = watch(fs, { path: d }, { headers: { "connect-timeout-ms": "300" } });
    await withTimeout(w.done, 15000, "stream end");
    assert.equal(w.error?.code, Code.DeadlineExceeded, String(w.error));
  });

  it("client cancel releases the watch", async () => {
    const d = freshDir();
    const before = fdCounts(envd.pid);
    const w = await startedWatch(fs, { path: d });
    assert.equal(fdCounts(envd.pid).watches, before.watches + 1);
    await w.stop();
    await waitFor(() => fdCounts(envd.pid).watches === before.watches, { what: "the watch to go" });
  });

  it("errors: not found, not a directory (with envd's literal quirk), bad ~", async () => {
    const w1 = watch(fs, { path: p("missing") });
    await w1.done;
    assert.equal(w1.error?.code, Code.NotFound);
    assert.equal(w1.error.rawMessage, `path ${p("missing")} not found: stat ${p("missing")}: no such file or directory`);
    fsn.writeFileSync(p("plain"), "");
    const w2 = watch(fs, { path: p("plain") });
    await w2.done;
    assert.equal(w2.error?.code, Code.InvalidArgument);
    assert.equal(w2.error.rawMessage, `path ${p("plain")} not a directory: %!w(<nil>)`);
    const e3 = await errOf(fs.createWatcher({ path: p("missing") }));
    assert.equal(e3.code, Code.NotFound);
  });

  it(`a burst of ${LONG ? "100,000" : "20,000"} creations reaches a reading client completely`, { timeout: LONG ? 300000 : 90000 }, async () => {
    const n = LONG ? 100000 : 20000;
    const d = freshDir();
    const w = await startedWatch(fs, { path: d });
    await createFiles(d, n);
    await waitFor(() => w.events.length >= n || w.ended, { timeoutMs: LONG ? 280000 : 80000, what: `${n} events` });
    await delay(100);
    assert.equal(w.error, null, String(w.error));
    assert.equal(w.events.filter((e) => e.type === ET.CREATE).length, n);
    assert.equal(new Set(w.events.map((e) => e.name)).size, n);
    await w.stop();
    fsn.rmSync(d, { recursive: true });
  });
});

describe("bounds", () => {
  let small, smallFs;
  before(async () => {
    small = await startEnvd({
      testServices: false,
      extraArgs: ["-no-cgroups", "--watch-queue-events", "100", "--watcher-queue-events", "50", "--max-inotify-watches", "8"],
    });
    smallFs = fsClient(small);
  });
  after(async () => { await small?.stop(); });

  it("a stalled client ends with data_loss; a second watcher on the same directory keeps working", { timeout: 90000 }, async () => {
    const d = freshDir();
    const n = 4000;
    // The stalled stream: an HTTP/2 request that stops reading (paused, so no WINDOW_UPDATE).
    const session = http2.connect(small.baseUrl);
    const req = session.request({ ":method": "POST", ":path": "/filesystem.Filesystem/WatchDir", "content-type": "application/connect+json" });
    req.end(envelope(0, JSON.stringify({ path: d })));
    let stalledData = Buffer.alloc(0);
    let onStalledData;
    req.on("data", (c) => { stalledData = Buffer.concat([stalledData, c]); onStalledData?.(); });
    const stalledEnd = new Promise((r) => req.on("end", r));
    await new Promise((r) => { onStalledData = () => { if (stalledData.toString("latin1").includes('"start"')) r(); }; onStalledData(); });
    req.pause();
    let goodCreates = 0;
    const good = watch(fsClient(small, { httpVersion: "2", useBinaryFormat: true }), { path: d }, {
      onEvent: (e) => { if (e.type === ET.CREATE) goodCreates++; },
    });
    await withTimeout(good.started, 15000, "second watcher start");
    // Paced so that the reading watcher (same bound of 100) never has more than 80 queued, while
    // the stalled one's socket buffers and queue fill.
    const prefix = `stall-${"x".repeat(200)}-`; // long names fill the stalled client's socket buffers sooner
    for (let made = 0; made < n;) {
      for (let i = 0; i < 80; i++) fsn.closeSync(fsn.openSync(path.join(d, `${prefix}${made++}`), "w"));
      await waitFor(() => goodCreates >= made || good.ended, { timeoutMs: 20000, what: `${made} events on the reading watcher` });
    }
    assert.equal(good.error, null, String(good.error));
    assert.equal(goodCreates, n);
    req.resume();
    await withTimeout(stalledEnd, 20000, "the stalled stream's end");
    const { messages, end } = parseConnectStream(stalledData);
    assert.ok(messages.length < n, `the stalled stream got ${messages.length} of ${n} events, then ${JSON.stringify(end)}`);
    assert.equal(end?.error?.code, "data_loss", JSON.stringify(end));
    assert.match(end.error.message, /^events were lost: the watcher's queue is full \(100 events/);
    session.close();
    await good.stop();
    fsn.rmSync(d, { recursive: true });
  });

  it("the watch budget: a clear error naming the flag and the sysctl; the daemon keeps serving", async () => {
    const d = freshDir();
    for (let i = 0; i < 10; i++) fsn.mkdirSync(path.join(d, `s${i}`));
    const before = fdCounts(small.pid);
    const w = watch(smallFs, { path: d, recursive: true });
    await w.done;
    assert.equal(w.error?.code, Code.Internal);
    assert.match(w.error.rawMessage, /^error adding path .* to watcher: envd's inotify watch budget of 8 watches is used up/);
    assert.match(w.error.rawMessage, /--max-inotify-watches/);
    assert.match(w.error.rawMessage, /fs\.inotify\.max_user_watches/);
    assert.equal(fdCounts(small.pid).watches, before.watches, "a refused watch keeps none of its watches");
    const ok = await startedWatch(smallFs, { path: d });
    fsn.writeFileSync(path.join(d, "still"), "");
    await waitFor(() => ok.names().includes("CREATE still"), { what: "event after the refusal" });
    await ok.stop();
  });

  it("a polling watcher whose queue fills fails with data_loss, on every call", async () => {
    const d = freshDir();
    const { watcherId } = await smallFs.createWatcher({ path: d });
    await createFiles(d, 200);
    await delay(100);
    const e1 = await errOf(smallFs.getWatcherEvents({ watcherId }));
    assert.equal(e1.code, Code.DataLoss);
    assert.match(e1.rawMessage, /events were lost: the watcher's queue is full \(50 events/);
    const e2 = await errOf(smallFs.getWatcherEvents({ watcherId }));
    assert.equal(e2.code, Code.DataLoss);
    await smallFs.removeWatcher({ watcherId });
  });
});

describe("polling watchers", () => {
  it("CreateWatcher / GetWatcherEvents drains / RemoveWatcher; unknown ids are not_found", async () => {
    const d = freshDir();
    const { watcherId } = await fs.createWatcher({ path: d, recursive: true, includeEntry: true });
    assert.match(watcherId, /^w[a-z0-9]{20}$/);
    fsn.mkdirSync(path.join(d, "x", "y"), { recursive: true });
    fsn.writeFileSync(path.join(d, "x", "y", "z"), "");
    const got = [];
    await waitFor(async () => {
      const r = await fs.getWatcherEvents({ watcherId });
      got.push(...r.events);
      return got.some((e) => e.name === "x/y/z");
    }, { what: "x/y/z" });
    assert.deepEqual(got.filter((e) => e.type === ET.CREATE).map((e) => e.name).sort(), ["x", "x/y", "x/y/z"]);
    assert.equal(got.find((e) => e.name === "x/y/z").entry?.name, "z");
    assert.equal((await fs.getWatcherEvents({ watcherId })).events.length, 0, "drained");
    await fs.removeWatcher({ watcherId });
    const e = await errOf(fs.getWatcherEvents({ watcherId }));
    assert.equal(e.code, Code.NotFound);
    assert.equal(e.rawMessage, `watcher with id ${watcherId} not found`);
    const e2 = await errOf(fs.removeWatcher({ watcherId: "wnope" }));
    assert.equal(e2.code, Code.NotFound);
    assert.equal(e2.rawMessage, "watcher with id wnope not found");
  });

  it("an idle polling watcher is evicted: failed_precondition naming the idle time", async () => {
    const quick = await startEnvd({ testServices: false, extraArgs: ["-no-cgroups", "--watcher-idle-timeout-ms", "200"] });
    try {
      const qfs = fsClient(quick);
      const d = freshDir();
      const { watcherId } = await qfs.createWatcher({ path: d });
      const e = await waitFor(async () => {
        const err = await errOf(qfs.getWatcherEvents({ watcherId }).then(() => delay(50)).then(() => { throw new Error("still there"); }))
          .catch(() => null);
        return err && err.code === Code.FailedPrecondition ? err : null;
      }, { what: "eviction", timeoutMs: 15000, intervalMs: 300 });
      assert.match(e.rawMessage, new RegExp(`^watcher ${watcherId} was evicted after \\d+ s without GetWatcherEvents$`));
      assert.equal(fdCounts(quick.pid).watches, 0);
    } finally {
      await quick.stop();
    }
  });
});

describe("eviction under pressure", () => {
  // Small limits: 4 polling watchers, 10 inotify watches (pressure from 9, the 90 % check).
  let pe, pfs;
  before(async () => {
    pe = await startEnvd({
      testServices: false,
      extraArgs: ["-no-cgroups", "--max-watchers", "4", "--max-inotify-watches", "10", "--watcher-idle-timeout-ms", "10000"],
    });
    pfs = fsClient(pe);
  });
  after(async () => { await pe?.stop(); });

  const create = async (dir, req = {}) => (await pfs.createWatcher({ path: dir, ...req })).watcherId;
  const poll = (id) => pfs.getWatcherEvents({ watcherId: id });
  async function assertEvicted(id) {
    const e = await errOf(poll(id));
    assert.equal(e.code, Code.FailedPrecondition, `${id}: ${e.rawMessage}`);
    assert.match(e.rawMessage, new RegExp(`^watcher ${id} was evicted after \\d+ s without GetWatcherEvents$`));
  }
  async function assertStreamAlive(w, dir, name) { // name relative to the watched dir
    fsn.writeFileSync(path.join(dir, name), "");
    await waitFor(() => w.names().includes(`CREATE ${name}`) || w.ended, { what: `CREATE ${name} on the stream` });
    assert.equal(w.ended, false, String(w.error));
  }
  const watchesNow = () => fdCounts(pe.pid).watches;

  it("--max-watchers: the least recently polled polling watcher goes first; a WatchDir stream never", async () => {
    const base = watchesNow();
    const sd = freshDir();
    const s = await startedWatch(pfs, { path: sd });
    const [a, b, c, d] = [await create(freshDir()), await create(freshDir()), await create(freshDir()), await create(freshDir())];
    // At the limit but not past it: nobody was evicted. Polled in this order, A is the least recent.
    for (const id of [a, c, d, b]) await poll(id);
    assert.equal(watchesNow(), base + 5);
    const e = await create(freshDir());
    await assertEvicted(a);
    for (const id of [b, c, d, e]) await poll(id); // order now: B, C, D, E
    await waitFor(() => watchesNow() === base + 5, { what: "the evicted watcher's inotify watch released" });
    // Keep creating: each new one evicts the least recently polled, in order; the stream stays.
    const f = await create(freshDir());
    await assertEvicted(b);
    const g = await create(freshDir());
    await assertEvicted(c);
    for (const id of [d, e, f, g]) await poll(id);
    await assertStreamAlive(s, sd, "after-evictions");
    for (const id of [d, e, f, g]) await pfs.removeWatcher({ watcherId: id });
    await s.stop();
    await waitFor(() => watchesNow() === base, { what: `inotify watches back to ${base}` });
  });

  it("--max-inotify-watches: at 90 % of the budget the least recently polled goes first; streams are not evicted", async () => {
    const base = watchesNow();
    assert.equal(base, 0, "the previous test released everything");
    // A recursive stream holding 6 watches, then polling watchers of one watch each.
    const sd = freshDir();
    for (let i = 0; i < 5; i++) fsn.mkdirSync(path.join(sd, `s${i}`));
    const s = await startedWatch(pfs, { path: sd, recursive: true });
    assert.equal(watchesNow(), 6);
    const a = await create(freshDir());
    const b = await create(freshDir());
    const c = await create(freshDir()); // created at 8 of 10: below 90 %, nothing evicted
    assert.equal(watchesNow(), 9);
    for (const id of [a, c, b]) await poll(id); // A is the least recently polled
    const d = await create(freshDir()); // created at 9 of 10: A makes room
    await assertEvicted(a);
    await poll(b);
    await poll(c);
    await poll(d);
    assert.equal(watchesNow(), 9);
    await assertStreamAlive(s, sd, "s3/in-subdir");
    // Only 3 polling watchers live (below --max-watchers 4): the budget alone evicts B next.
    const e = await create(freshDir());
    await assertEvicted(b);
    for (const id of [c, d, e]) await poll(id);
    await assertStreamAlive(s, sd, "still-streaming");
    // With every polling watcher gone, a stream that needs more than the budget is refused, not
    // served by evicting another stream.
    for (const id of [c, d, e]) await pfs.removeWatcher({ watcherId: id });
    await waitFor(() => watchesNow() === 6, { what: "the polling watchers' watches released" });
    const big = freshDir();
    for (let i = 0; i < 5; i++) fsn.mkdirSync(path.join(big, `s${i}`));
    const refused = watch(pfs, { path: big, recursive: true });
    await refused.done;
    assert.equal(refused.error?.code, Code.Internal, String(refused.error));
    assert.match(refused.error.rawMessage, /inotify watch budget of 10 watches is used up/);
    await assertStreamAlive(s, sd, "after-refusal");
    await s.stop();
    await waitFor(() => watchesNow() === 0, { what: "inotify watches back to 0" });
  });

  it("no pressure, idle timeout not reached: an idle polling watcher is kept across idle sweeps", async () => {
    // --watcher-idle-timeout-ms 10000 sweeps every 2.5 s; waiting 3 s lets at least one sweep run
    // while the watcher is idle, far (7 s) from its timeout. One watcher, one watch: no pressure.
    const d = freshDir();
    const id = await create(d);
    fsn.writeFileSync(path.join(d, "kept"), "");
    await delay(3000);
    const r = await poll(id);
    assert.deepEqual(r.events.map((e) => `${ETN[e.type]} ${e.name}`).filter((n) => n.startsWith("CREATE")), ["CREATE kept"]);
    await pfs.removeWatcher({ watcherId: id });
  });
});

describe("leaks", () => {
  it("5,000 watch/unwatch cycles leave the fd and inotify watch counts where they started", { timeout: 180000 }, async () => {
    const d = freshDir();
    fsn.mkdirSync(path.join(d, "s1", "s2"), { recursive: true });
    // The daemon-wide inotify fd opens with the first watch and stays: open it before counting,
    // so the test does not depend on an earlier test having watched something.
    await fs.removeWatcher({ watcherId: (await fs.createWatcher({ path: d })).watcherId });
    const before = fdCounts(envd.pid);
    for (let i = 0; i < 4500; i++) {
      const { watcherId } = await fs.createWatcher({ path: d, recursive: i % 2 === 0 });
      await fs.removeWatcher({ watcherId });
    }
    for (let i = 0; i < 500; i++) {
      const w = await startedWatch(fs, { path: d, recursive: true });
      await w.stop();
    }
    await waitFor(() => {
      const now = fdCounts(envd.pid);
      return now.watches === before.watches && now.fds <= before.fds;
    }, { what: `counts back to ${JSON.stringify(before)} (now ${JSON.stringify(fdCounts(envd.pid))})` });
  });
});
