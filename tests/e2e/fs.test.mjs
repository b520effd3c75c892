// filesystem.Filesystem Stat, ListDir, MakeDir, Move, Remove (contract §5.1–5.6, §5.9, §5.10)
// through connect-node, as root and as `user`: codes, messages (worded as the reference envd's),
// EntryInfo fields, ownership of what envd creates, awkward paths, cross-device moves and a
// 100,000-entry listing while another stream keeps flowing.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, execSync } from "node:child_process";
import fsn from "node:fs";
import path from "node:path";
import { createClient, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { it, startEnvd, service, connectJson, withTimeout, waitFor } from "./lib/envd.mjs";
import { errOf } from "./lib/clients.mjs";

const basic = (user) => ({ authorization: `Basic ${Buffer.from(`${user}:`).toString("base64")}` });
const FT = { UNSPECIFIED: 0, FILE: 1, DIRECTORY: 2 };

function expectErr(e, code, message) {
  assert.equal(e.code, code, `${Code[e.code]}: ${e.rawMessage}`);
  if (message instanceof RegExp) assert.match(e.rawMessage, message);
  else if (message !== undefined) assert.equal(e.rawMessage, message);
}

let envd, fs, fsBin, Process, proc, root, uid, gid, home;

before(async () => {
  // The sandbox user of E2B templates; created here if missing (idempotent).
  execSync("id user >/dev/null 2>&1 || useradd -m user");
  uid = Number(execFileSync("id", ["-u", "user"]).toString().trim());
  gid = Number(execFileSync("id", ["-g", "user"]).toString().trim());
  home = execFileSync("getent", ["passwd", "user"]).toString().split(":")[5];
  envd = await startEnvd({ testServices: false, extraArgs: ["-no-cgroups"] });
  // As the SDKs: Connect JSON over HTTP/1.1. Plus binary protobuf over h2c.
  fs = createClient(service("filesystem.Filesystem"), createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "1.1" }));
  fsBin = createClient(service("filesystem.Filesystem"),
    createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "2", useBinaryFormat: true }));
  Process = service("process.Process");
  proc = createClient(Process, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "2", useBinaryFormat: true }));
  root = fsn.mkdtempSync("/tmp/envd-e2e-fs-");
});

after(async () => {
  await envd?.stop();
  // In the sanitizer build, a report (at any time, or leaks at exit) fails the file.
  if (envd) assert.doesNotMatch(envd.stderr(), /Sanitizer|runtime error:/);
  if (root) fsn.rmSync(root, { recursive: true, force: true });
});

const p = (...parts) => path.join(root, ...parts);
const asUser = { headers: basic("user") };

describe("Stat", () => {
  it("a file: every EntryInfo field", async () => {
    fsn.writeFileSync(p("stat-file"), "hello");
    fsn.chmodSync(p("stat-file"), 0o640);
    execFileSync("touch", ["-m", "-d", "@1700000000.123456789", p("stat-file")]);
    const { entry } = await fs.stat({ path: p("stat-file") });
    assert.equal(entry.name, "stat-file");
    assert.equal(entry.path, p("stat-file"));
    assert.equal(entry.type, FT.FILE);
    assert.equal(entry.size, 5n);
    assert.equal(entry.mode, 0o640);
    assert.equal(entry.permissions, "-rw-r-----");
    assert.equal(entry.owner, "root");
    assert.equal(entry.group, "root");
    assert.equal(entry.modifiedTime.seconds, 1700000000n);
    assert.equal(entry.modifiedTime.nanos, 123456789);
    assert.equal(entry.symlinkTarget, undefined);
  });

  it("symlinks report their target's type and bits, the resolved target, Lrwxrwxrwx", async () => {
    fsn.mkdirSync(p("stat-dir"), { mode: 0o750 });
    fsn.chmodSync(p("stat-dir"), 0o750);
    fsn.symlinkSync("stat-dir", p("stat-ldir"));
    fsn.symlinkSync("stat-ldir", p("stat-lldir"));
    fsn.symlinkSync("nowhere", p("stat-broken"));
    let { entry } = await fs.stat({ path: p("stat-lldir") });
    assert.equal(entry.type, FT.DIRECTORY);
    assert.equal(entry.mode, 0o750);
    assert.equal(entry.permissions, "Lrwxrwxrwx");
    assert.equal(entry.symlinkTarget, p("stat-dir"));
    assert.equal(entry.size, BigInt("stat-ldir".length));
    ({ entry } = await fs.stat({ path: p("stat-broken") }));
    assert.equal(entry.type, FT.UNSPECIFIED);
    assert.equal(entry.mode, 0);
    assert.equal(entry.symlinkTarget, p("stat-broken"));
  });

  it("sticky dirs, setuid files, fifos, devices in Go's FileMode form", async () => {
    fsn.mkdirSync(p("stat-sticky"));
    fsn.chmodSync(p("stat-sticky"), 0o1777);
    fsn.writeFileSync(p("stat-suid"), "");
    fsn.chmodSync(p("stat-suid"), 0o4755);
    execFileSync("mkfifo", ["-m", "644", p("stat-fifo")]);
    const perms = async (x) => (await fs.stat({ path: x })).entry;
    assert.equal((await perms(p("stat-sticky"))).permissions, "dtrwxrwxrwx");
    assert.equal((await perms(p("stat-sticky"))).mode, 0o777);
    assert.equal((await perms(p("stat-suid"))).permissions, "urwxr-xr-x");
    const fifo = await perms(p("stat-fifo"));
    assert.equal(fifo.permissions, "prw-r--r--");
    assert.equal(fifo.type, FT.UNSPECIFIED);
    assert.equal((await perms("/dev/null")).permissions, "Dcrw-rw-rw-");
  });

  it("'' and relative paths resolve against the user's home; absolute paths are not cleaned", async () => {
    let { entry } = await fs.stat({ path: "" }, asUser);
    assert.equal(entry.path, home);
    assert.equal(entry.owner, "user");
    ({ entry } = await fs.stat({ path: "" }));
    assert.equal(entry.path, "/root");
    ({ entry } = await fs.stat({ path: `${root}/../${path.basename(root)}/` }));
    assert.equal(entry.path, `${root}/../${path.basename(root)}/`);
    assert.equal(entry.name, path.basename(root));
    const e = await errOf(fs.stat({ path: "~nobody/x" }));
    expectErr(e, Code.InvalidArgument, "failed to expand path '~nobody/x' for user 'root': cannot expand user-specific home dir");
  });

  it("missing → not_found; a file where a directory is expected → internal", async () => {
    expectErr(await errOf(fs.stat({ path: p("nope") })), Code.NotFound, `file not found: lstat ${p("nope")}: no such file or directory`);
    fsn.writeFileSync(p("stat-plain"), "");
    expectErr(await errOf(fs.stat({ path: p("stat-plain", "x") })), Code.Internal,
      `error getting file info: lstat ${p("stat-plain", "x")}: not a directory`);
  });

  it("metadata from user.e2b.* xattrs", async (t) => {
    fsn.writeFileSync(p("stat-meta"), "");
    try {
      execFileSync("python3", ["-c", `import os; os.setxattr(${JSON.stringify(p("stat-meta"))}, "user.e2b.owner", b"me"); os.setxattr(${JSON.stringify(p("stat-meta"))}, "user.other", b"x")`]);
    } catch (e) {
      t.skip(`cannot set user xattrs here: ${e.message}`);
      return;
    }
    const { entry } = await fs.stat({ path: p("stat-meta") });
    assert.deepEqual({ ...entry.metadata }, { owner: "me" });
  });
});

describe("ListDir", () => {
  before(() => {
    for (const d of ["ls/o/a/aa/aaa", "ls/o/b/bb"]) fsn.mkdirSync(p(d), { recursive: true });
    for (const f of ["ls/o/c", "ls/o/a/z", "ls/o/b/y", "ls/o/a/aa/aaa/q"]) fsn.writeFileSync(p(f), "");
    fsn.symlinkSync(p("ls/o/b"), p("ls/o/lb"));
    fsn.symlinkSync("o", p("ls/lo"));
    fsn.symlinkSync("loop2", p("ls/loop1"));
    fsn.symlinkSync("loop1", p("ls/loop2"));
  });
  const paths = (r) => r.entries.map((e) => e.path);

  it("depth 0 is 1; lexical pre-order; symlinked dirs listed, not followed", async () => {
    const o = (...x) => p("ls/o", ...x);
    assert.deepEqual(paths(await fs.listDir({ path: o() })), [o("a"), o("b"), o("c"), o("lb")]);
    assert.deepEqual(paths(await fs.listDir({ path: o(), depth: 2 })), [o("a"), o("a/aa"), o("a/z"), o("b"), o("b/bb"), o("b/y"), o("c"), o("lb")]);
    const all = await fs.listDir({ path: o(), depth: 50 });
    assert.deepEqual(paths(all), [o("a"), o("a/aa"), o("a/aa/aaa"), o("a/aa/aaa/q"), o("a/z"), o("b"), o("b/bb"), o("b/y"), o("c"), o("lb")]);
    const lb = all.entries.at(-1);
    assert.equal(lb.type, FT.DIRECTORY);
    assert.equal(lb.symlinkTarget, o("b"));
    assert.deepEqual(paths(await fsBin.listDir({ path: o(), depth: 1 })), [o("a"), o("b"), o("c"), o("lb")]);
  });

  it("a symlinked root lists the target under the requested path (joined and cleaned)", async () => {
    assert.deepEqual(paths(await fs.listDir({ path: p("ls/lo/") })), ["a", "b", "c", "lb"].map((n) => p("ls/lo", n)));
    assert.deepEqual(paths(await fs.listDir({ path: `${p("ls/o")}/../o/a` })), [p("ls/o/a/aa"), p("ls/o/a/z")]);
  });

  it("errors: missing, cyclic symlink, not a directory, invalid depth", async () => {
    expectErr(await errOf(fs.listDir({ path: p("ls/nope") })), Code.NotFound, `path not found: lstat ${p("ls/nope")}: no such file or directory`);
    expectErr(await errOf(fs.listDir({ path: p("ls/loop1") })), Code.FailedPrecondition, `cyclic symlink or chain >255 links at "${p("ls/loop1")}"`);
    expectErr(await errOf(fs.listDir({ path: p("ls/o/c") })), Code.InvalidArgument, `path is not a directory: ${p("ls/o/c")}`);
    const r = await connectJson(envd.port, "/filesystem.Filesystem/ListDir", { path: p("ls/o"), depth: -1 });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, "invalid_argument");
  });

  it("relative to the user's home, as `user`", async () => {
    const r = await fs.listDir({ path: "" }, asUser);
    for (const e of r.entries) assert.ok(e.path.startsWith(`${home}/`), e.path);
  });
});

describe("MakeDir", () => {
  it("creates parents owned by the user; the entry is the new directory", async () => {
    const { entry } = await fs.makeDir({ path: p("mk/a/b/") }, asUser);
    assert.equal(entry.path, p("mk/a/b/"));
    assert.equal(entry.name, "b");
    assert.equal(entry.type, FT.DIRECTORY);
    assert.equal(entry.owner, "user");
    for (const d of ["mk", "mk/a", "mk/a/b"]) {
      const st = fsn.statSync(p(d));
      assert.equal(st.uid, uid, d);
      assert.equal(st.gid, gid, d);
      assert.equal(st.mode & 0o777, 0o755, d);
    }
    const asRoot = await fs.makeDir({ path: p("mk/root-owned") });
    assert.equal(asRoot.entry.owner, "root");
    assert.equal(fsn.statSync(p("mk/root-owned")).uid, 0);
    assert.equal(fsn.statSync(p("mk")).uid, uid, "existing parents keep their owner");
  });

  it("relative paths land in the user's home", async () => {
    const name = `envd-e2e-mk-${process.pid}`;
    try {
      const { entry } = await fs.makeDir({ path: name }, asUser);
      assert.equal(entry.path, `${home}/${name}`);
      assert.equal(fsn.statSync(`${home}/${name}`).uid, uid);
    } finally {
      fsn.rmSync(`${home}/${name}`, { recursive: true, force: true });
    }
  });

  it("already_exists, a file in the way, a file as a parent", async () => {
    fsn.mkdirSync(p("mk2"));
    fsn.writeFileSync(p("mk2/file"), "");
    expectErr(await errOf(fs.makeDir({ path: p("mk2") })), Code.AlreadyExists, `directory already exists: ${p("mk2")}`);
    expectErr(await errOf(fs.makeDir({ path: p("mk2/file") })), Code.InvalidArgument, `path already exists but it is not a directory: ${p("mk2/file")}`);
    expectErr(await errOf(fs.makeDir({ path: p("mk2/file/x/y") })), Code.Internal, `error getting file info: stat ${p("mk2/file/x/y")}: not a directory`);
  });

  it("names with spaces, quotes, unicode and '..'", async () => {
    for (const name of ["with space", `qu"o'te`, "ünïcödé ✓ 日本", "a\\b"]) {
      const { entry } = await fs.makeDir({ path: p("mk3", name) });
      assert.equal(entry.name, name);
      assert.ok(fsn.statSync(p("mk3", name)).isDirectory());
    }
    const { entry } = await fs.makeDir({ path: `${p("mk3")}/with space/../dotdot` });
    assert.equal(entry.path, `${p("mk3")}/with space/../dotdot`);
    assert.ok(fsn.statSync(p("mk3/dotdot")).isDirectory());
    const list = await fs.listDir({ path: p("mk3") });
    assert.deepEqual(list.entries.map((e) => e.name), ["a\\b", "dotdot", `qu"o'te`, "with space", "ünïcödé ✓ 日本"]);
  });
});

describe("Move", () => {
  it("a file and a directory; parents created for the user; the entry keeps its owner", async () => {
    fsn.mkdirSync(p("mv"));
    fsn.writeFileSync(p("mv/f"), "data");
    const { entry } = await fs.move({ source: p("mv/f"), destination: p("mv/new/parent/g") }, asUser);
    assert.equal(entry.path, p("mv/new/parent/g"));
    assert.equal(entry.owner, "root");
    assert.equal(fsn.readFileSync(p("mv/new/parent/g"), "utf8"), "data");
    assert.equal(fsn.statSync(p("mv/new")).uid, uid);
    assert.equal(fsn.statSync(p("mv/new/parent")).uid, uid);
    assert.ok(!fsn.existsSync(p("mv/f")));
    await fs.move({ source: p("mv/new"), destination: p("mv/renamed dir ✓") });
    assert.equal(fsn.readFileSync(p("mv/renamed dir ✓/parent/g"), "utf8"), "data");
  });

  it("errors: missing source, an existing directory, a file as the parent", async () => {
    fsn.mkdirSync(p("mv2/full"), { recursive: true });
    fsn.writeFileSync(p("mv2/full/x"), "");
    fsn.writeFileSync(p("mv2/file"), "");
    expectErr(await errOf(fs.move({ source: p("mv2/nope"), destination: p("mv2/x") })), Code.NotFound,
      `source file not found: rename ${p("mv2/nope")} ${p("mv2/x")}: no such file or directory`);
    expectErr(await errOf(fs.move({ source: p("mv2/file"), destination: p("mv2/full") })), Code.Internal,
      `error renaming: rename ${p("mv2/file")} ${p("mv2/full")}: file exists`);
    expectErr(await errOf(fs.move({ source: p("mv2/full"), destination: p("mv2/file/sub") })), Code.Internal,
      `path is a file: ${p("mv2/file")}`);
    expectErr(await errOf(fs.move({ source: p("mv2/full"), destination: p("mv2/full/inside") })), Code.Internal,
      `error renaming: rename ${p("mv2/full")} ${p("mv2/full/inside")}: invalid argument`);
  });

  it("across devices: contents, mode, owner, times and links kept; the source removed", async (t) => {
    if (fsn.statSync("/dev/shm").dev === fsn.statSync(root).dev) {
      t.skip("/dev/shm and /tmp are on one device here");
      return;
    }
    const shm = fsn.mkdtempSync("/dev/shm/envd-e2e-fs-");
    try {
      fsn.mkdirSync(p("xdev/tree/sub"), { recursive: true });
      fsn.writeFileSync(p("xdev/tree/sub/f"), "cross");
      fsn.chownSync(p("xdev/tree/sub/f"), uid, gid);
      fsn.chmodSync(p("xdev/tree/sub/f"), 0o640);
      fsn.utimesSync(p("xdev/tree/sub/f"), 1, new Date(1600000000000));
      fsn.linkSync(p("xdev/tree/sub/f"), p("xdev/tree/hard"));
      fsn.symlinkSync("sub/f", p("xdev/tree/link"));
      const { entry } = await fs.move({ source: p("xdev/tree"), destination: `${shm}/moved` });
      assert.equal(entry.path, `${shm}/moved`);
      assert.equal(entry.type, FT.DIRECTORY);
      assert.ok(!fsn.existsSync(p("xdev/tree")));
      const st = fsn.statSync(`${shm}/moved/sub/f`);
      assert.equal(fsn.readFileSync(`${shm}/moved/sub/f`, "utf8"), "cross");
      assert.equal(st.uid, uid);
      assert.equal(st.mode & 0o7777, 0o640);
      assert.equal(st.mtimeMs, 1600000000000);
      assert.equal(fsn.statSync(`${shm}/moved/hard`).ino, st.ino);
      assert.equal(fsn.readlinkSync(`${shm}/moved/link`), "sub/f");
      assert.deepEqual(fsn.readdirSync(shm), ["moved"]);
    } finally {
      fsn.rmSync(shm, { recursive: true, force: true });
    }
  });

  it("across devices, cancelled by the deadline: the source stays, no temporary copy is left", { timeout: 60000 }, async (t) => {
    if (fsn.statSync("/dev/shm").dev === fsn.statSync(root).dev) {
      t.skip("/dev/shm and /tmp are on one device here");
      return;
    }
    const shm = fsn.mkdtempSync("/dev/shm/envd-e2e-fs-");
    try {
      fsn.mkdirSync(p("xdev2"));
      const fd = fsn.openSync(p("xdev2/big"), "w");
      fsn.ftruncateSync(fd, 2 ** 31);  // sparse: cheap to make, slow to copy
      fsn.closeSync(fd);
      const e = await errOf(fs.move({ source: p("xdev2/big"), destination: `${shm}/big` }, { timeoutMs: 1 }));
      assert.equal(e.code, Code.DeadlineExceeded, e.message);
      // connect-node gives up at its own deadline; envd's job notices the cancellation between
      // chunks and removes its copy.
      await waitFor(() => fsn.readdirSync(shm).length === 0, { timeoutMs: 20000, what: "the temporary copy to go" });
      assert.equal(fsn.statSync(p("xdev2/big")).size, 2 ** 31);
    } finally {
      fsn.rmSync(shm, { recursive: true, force: true });
    }
  });

  it("across devices, the client gone mid-copy: the source stays, the copy is removed", { timeout: 60000 }, async (t) => {
    if (fsn.statSync("/dev/shm").dev === fsn.statSync(root).dev) {
      t.skip("/dev/shm and /tmp are on one device here");
      return;
    }
    const shm = fsn.mkdtempSync("/dev/shm/envd-e2e-fs-");
    try {
      fsn.mkdirSync(p("xdev3"));
      const fd = fsn.openSync(p("xdev3/big"), "w");
      fsn.ftruncateSync(fd, 2 ** 31);  // sparse: cheap to make, slow to copy
      fsn.closeSync(fd);
      const ac = new AbortController();
      const call = errOf(fs.move({ source: p("xdev3/big"), destination: `${shm}/big` }, { signal: ac.signal }));
      await waitFor(() => fsn.readdirSync(shm).some((n) => n.startsWith(".envd-move-")), { timeoutMs: 20000, intervalMs: 5, what: "the temporary copy" });
      ac.abort();
      assert.equal((await call).code, Code.Canceled);
      await waitFor(() => fsn.readdirSync(shm).length === 0, { timeoutMs: 20000, what: "the temporary copy to go" });
      assert.equal(fsn.statSync(p("xdev3/big")).size, 2 ** 31);
    } finally {
      fsn.rmSync(shm, { recursive: true, force: true });
    }
  });
});

describe("Remove", () => {
  it("recursive; missing is success; symlinks removed, not followed", async () => {
    fsn.mkdirSync(p("rm/tree/sub"), { recursive: true });
    fsn.writeFileSync(p("rm/tree/sub/f"), "");
    fsn.writeFileSync(p("rm/keep"), "kept");
    fsn.symlinkSync(p("rm/keep"), p("rm/tree/link"));
    fsn.symlinkSync(p("rm"), p("rm/tree/dirlink"));
    assert.deepEqual(await fs.remove({ path: p("rm/tree") }), await fs.remove({ path: p("rm/tree") }));
    assert.ok(!fsn.existsSync(p("rm/tree")));
    assert.equal(fsn.readFileSync(p("rm/keep"), "utf8"), "kept");
    await fs.remove({ path: p("rm/never/was") });
  });

  it("errors are internal with Go's text", async () => {
    fsn.mkdirSync(p("rm2"));
    fsn.writeFileSync(p("rm2/file"), "");
    expectErr(await errOf(fs.remove({ path: p("rm2/file/x") })), Code.Internal,
      `error removing file or directory: unlinkat ${p("rm2/file/x")}: not a directory`);
    expectErr(await errOf(fs.remove({ path: `${p("rm2")}/.` })), Code.Internal,
      `error removing file or directory: RemoveAll ${p("rm2")}/.: invalid argument`);
    assert.ok(fsn.existsSync(p("rm2/file")));
  });

  it("names with quotes, spaces and unicode, and '..'", async () => {
    fsn.mkdirSync(p("rm3/sub"), { recursive: true });
    for (const n of [`a "b" 'c'`, "ü ✓"]) fsn.writeFileSync(p("rm3", n), "");
    await fs.remove({ path: p("rm3", `a "b" 'c'`) });
    await fs.remove({ path: `${p("rm3")}/missing/../ü ✓` });  // the kernel resolves "..": missing → success
    assert.ok(fsn.existsSync(p("rm3", "ü ✓")));
    await fs.remove({ path: `${p("rm3")}/sub/../ü ✓` });
    assert.deepEqual(fsn.readdirSync(p("rm3")), ["sub"]);
  });
});

describe("Legacy shaping (§5.10)", () => {
  it("User-Agent connect-python gets name, type and path only", async () => {
    fsn.writeFileSync(p("legacy"), "x");
    const r = await connectJson(envd.port, "/filesystem.Filesystem/Stat", { path: p("legacy") }, { "user-agent": "connect-python" });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { entry: { name: "legacy", type: "FILE_TYPE_FILE", path: p("legacy") } });
    const full = await connectJson(envd.port, "/filesystem.Filesystem/Stat", { path: p("legacy") }, { "user-agent": "connect-python/1" });
    assert.equal(full.json.entry.owner, "root");
  });
});

describe("A 100,000-entry directory", () => {
  it("ListDir completes while a process stream keeps flowing", { timeout: 180000 }, async () => {
    const dir = p("big");
    fsn.mkdirSync(dir);
    for (let i = 0; i < 100000; i++) fsn.closeSync(fsn.openSync(`${dir}/f${String(i).padStart(6, "0")}`, "w"));
    const ac = new AbortController();
    let ticks = 0;
    let duringList = 0;
    let listing = false;
    let pid;
    let firstTick;
    const first = new Promise((r) => { firstTick = r; });
    const stream = (async () => {
      try {
        for await (const res of proc.start({ process: { cmd: "/bin/sh", args: ["-c", "while :; do echo tick; sleep 0.01; done"] } }, { signal: ac.signal })) {
          if (res.event?.event.case === "start") pid = res.event.event.value.pid;
          if (res.event?.event.case === "data") {
            ticks++;
            if (listing) duringList++;
            firstTick();
          }
        }
      } catch { /* aborted */ }
    })();
    await withTimeout(first, 10000, "first output of the background process");
    listing = true;
    const t0 = Date.now();
    const r = await fs.listDir({ path: dir });
    const ms = Date.now() - t0;
    listing = false;
    const before = ticks;
    assert.equal(r.entries.length, 100000);
    assert.equal(r.entries[0].name, "f000000");
    assert.equal(r.entries[99999].path, `${dir}/f099999`);
    // The other stream still flows after the listing (and, for the log, how much flowed during it).
    await withTimeout((async () => { while (ticks === before) await new Promise((res) => setTimeout(res, 10)); })(), 10000, "more output");
    console.log(`# 100,000-entry ListDir: ${ms} ms; process output messages received meanwhile: ${duringList}`);
    // envd keeps a process running when its stream goes: end it first (the stream then ends).
    await proc.sendSignal({ process: { selector: { case: "pid", value: pid } }, signal: 9 });
    await withTimeout(stream, 10000, "the process stream to end");
    ac.abort();
  });
});
