// Directories as archives (README): GET /files of a directory with Accept: application/x-tar or
// application/gzip, POST /files with Content-Type: application/x-tar. GNU tar makes archives and
// checks ours; Python's tarfile builds the hostile ones. Round trips compare checksums, modes,
// owners, symlinks, empty directories, mtimes and user.e2b.* metadata; every hostile archive must
// be refused with a clear 400/413 and leave nothing behind, inside the target or outside it.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  mkdtempSync, writeFileSync, readFileSync, rmSync, lstatSync, readdirSync, existsSync, mkdirSync, symlinkSync,
  readlinkSync, chmodSync, utimesSync, openSync, writeSync, closeSync, linkSync,
} from "node:fs";
import { join } from "node:path";
import { it, startEnvd, h1Request, h2Connect, h2Request } from "./lib/envd.mjs";
import { run as runProgram } from "./lib/clients.mjs";

const BIG = process.env.ENVD_LONG === "1" ? 1 << 30 : 64 << 20;
const MAX_BYTES = BIG + (64 << 20);  // --archive-max-bytes: the big file fits, the bomb does not
let envd;
let tmp;
let seq = 0;
let user;

const run = (cmd, args, opts = {}) => runProgram(cmd, args, { timeoutMs: 120000, ...opts });

/** curl to a file; resolves { status, headers (lowercase map), file }. */
async function curlTo(file, args) {
  const r = await run("curl", ["-sS", "-D", "-", "-o", file, ...args]);
  assert.equal(r.code, 0, r.stderr);
  const head = r.stdout.toString("latin1").trim().split("\r\n");
  const headers = {};
  for (const l of head.slice(1)) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(head[0].split(" ")[1]), headers, file };
}

const fresh = (name = "t") => join(tmp, `${name}${++seq}`);
const q = (params) => "/files?" + new URLSearchParams(params).toString();
const sha = (p) => createHash("sha256").update(readFileSync(p)).digest("hex");
const xattrs = (p) => {
  const r = spawnSync("python3", ["-c",
    "import os,sys,json;p=sys.argv[1];print(json.dumps({k:os.getxattr(p,k,follow_symlinks=False).decode() for k in os.listxattr(p,follow_symlinks=False) if k.startswith('user.')}))", p]);
  assert.equal(r.status, 0, r.stderr.toString());
  return JSON.parse(r.stdout.toString());
};
const setXattr = (p, k, v) => {
  const r = spawnSync("python3", ["-c", "import os,sys;os.setxattr(sys.argv[1],sys.argv[2],sys.argv[3].encode())", p, k, v]);
  assert.equal(r.status, 0, r.stderr.toString());
};
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;

/** Every entry under `root`: relative path → { type, mode, uid, gid, mtime, sha|link, xattrs }. */
function snapshot(root, { owners = true } = {}) {
  const out = {};
  const walk = (rel) => {
    for (const n of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const p = join(root, r);
      const st = lstatSync(p);
      const e = { mode: (st.mode & 0o7777).toString(8), mtime: Math.floor(st.mtimeMs / 1000) };
      if (owners) Object.assign(e, { uid: st.uid, gid: st.gid });
      if (st.isSymbolicLink()) {
        Object.assign(e, { type: "link", link: readlinkSync(p) });
        delete e.mode;
      } else if (st.isDirectory()) {
        Object.assign(e, { type: "dir", xattrs: xattrs(p) });
        walk(r);
      } else {
        Object.assign(e, { type: "file", sha: sha(p), xattrs: xattrs(p), nlink: st.nlink });
      }
      out[r] = e;
    }
  };
  walk("");
  return out;
}

/** What nothing may leave behind: staging directories beside `target`. */
const leftovers = (parent) => readdirSync(parent).filter((n) => n.includes(".e2b-extract."));

/** A tree with unicode names, symlinks, a hard link, empty directories, metadata and one big file. */
function makeTree(root, { big = 0 } = {}) {
  mkdirSync(join(root, "sub/empty"), { recursive: true });
  mkdirSync(join(root, "ünïcödé ✓/deep/er"), { recursive: true });
  writeFileSync(join(root, "a.txt"), "hello\n");
  writeFileSync(join(root, "ünïcödé ✓/deep/er/ñ.bin"), randomBytes(5000));
  writeFileSync(join(root, "sub/exec.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(root, "sub/exec.sh"), 0o750);
  writeFileSync(join(root, "sub/private"), "secret");
  chmodSync(join(root, "sub/private"), 0o600);
  writeFileSync(join(root, "empty-file"), "");
  writeFileSync(join(root, "x".repeat(120) + ".long"), "long name");
  symlinkSync("../a.txt", join(root, "sub/rel-link"));
  symlinkSync("/etc/hostname", join(root, "abs-link"));
  symlinkSync("missing-target", join(root, "dangling"));
  linkSync(join(root, "a.txt"), join(root, "sub/hard-a"));  // a hard link: one file, two names
  setXattr(join(root, "a.txt"), "user.e2b.owner", "alice");
  setXattr(join(root, "sub"), "user.e2b.kind", "folder");
  if (big) {
    const fd = openSync(join(root, "big.bin"), "w");
    const chunk = randomBytes(1 << 20);
    for (let i = 0; i < big >> 20; i++) writeSync(fd, chunk.map((b) => b ^ (i & 0xff)));
    closeSync(fd);
  }
  // Stable mtimes (directories last: writing inside them moved theirs).
  const set = (rel, t) => utimesSync(join(root, rel), t, t);
  set("a.txt", 1600000000);
  set("sub/exec.sh", 1600000100);
  set("ünïcödé ✓/deep/er/ñ.bin", 1600000200);
  set("sub/empty", 1600000300);
  set("ünïcödé ✓/deep/er", 1600000400);
  set("sub", 1600000500);
}

before(async () => {
  spawnSync("sh", ["-c", "id user >/dev/null 2>&1 || useradd -m user"]);
  user = {
    uid: Number(spawnSync("id", ["-u", "user"]).stdout.toString().trim()),
    gid: Number(spawnSync("id", ["-g", "user"]).stdout.toString().trim()),
  };
  envd = await startEnvd({ extraArgs: ["--archive-max-bytes", String(MAX_BYTES), "--archive-max-header-bytes", "65536"] });
  tmp = mkdtempSync("/tmp/envd-e2e-archive-");
});

after(async () => {
  const alive = envd?.alive();
  await envd?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
});

describe("archive download: negotiation", () => {
  let src;
  before(() => {
    src = fresh("neg");
    mkdirSync(src);
    makeTree(src);
  });

  it("only an explicit application/x-tar or application/gzip with q > 0 selects an archive", { timeout: 60000 }, async () => {
    for (const accept of [undefined, "*/*", "application/*", "application/x-tar;q=0", "application/json", "application/gzip;q=0, */*"]) {
      const headers = accept ? { accept } : {};
      const r = await h1Request(envd.port, { method: "GET", path: q({ path: src }), headers });
      assert.equal(r.status, 400, `Accept: ${accept}`);
      assert.match(r.body.toString(), /is a directory/);
    }
    const t = await h1Request(envd.port, { method: "GET", path: q({ path: src }), headers: { accept: "text/html, application/x-tar;q=0.5" } });
    assert.equal(t.status, 200);
    assert.equal(t.headers["content-type"], "application/x-tar");
    assert.equal(t.headers.vary, "Accept, Accept-Encoding");
    assert.ok(t.body.length % 512 === 0);
    // The higher q wins.
    const g = await h1Request(envd.port, { method: "GET", path: q({ path: src }), headers: { accept: "application/x-tar;q=0.4, application/gzip;q=0.9" } });
    assert.equal(g.status, 200);
    assert.equal(g.headers["content-type"], "application/gzip");
    assert.equal(g.headers["content-encoding"], undefined);
    assert.deepEqual([...g.body.subarray(0, 2)], [0x1f, 0x8b]);
    // A regular file is still a file, whatever Accept says.
    const f = await h1Request(envd.port, { method: "GET", path: q({ path: join(src, "a.txt") }), headers: { accept: "application/x-tar" } });
    assert.equal(f.status, 200);
    assert.equal(f.body.toString(), "hello\n");
  });

  it("a tar goes out gzip-encoded when Accept-Encoding prefers it; GNU tar reads both forms", { timeout: 60000 }, async () => {
    const a = await curlTo(fresh("enc") + ".tar", ["--compressed", "-H", "Accept: application/x-tar", envd.url(q({ path: src }))]);
    assert.equal(a.status, 200);
    assert.equal(a.headers["content-encoding"], "gzip");
    const list = spawnSync("tar", ["-tf", a.file]).stdout.toString().split("\n").filter(Boolean).sort();
    assert.ok(list.includes("a.txt") && list.includes("sub/") && list.includes("sub/empty/"), list.join(","));
    const z = await curlTo(fresh("gz") + ".tar.gz", ["-H", "Accept: application/gzip", envd.url(q({ path: src }))]);
    const zl = spawnSync("tar", ["-tzf", z.file]);
    assert.equal(zl.status, 0, zl.stderr.toString());
    assert.deepEqual(zl.stdout.toString().split("\n").filter(Boolean).sort(), list);
  });
});

describe("archive download: what the tar holds", () => {
  it(`a tree with a ${BIG >> 20} MiB file: GNU tar extracts the same tree; envd's RSS grows little`, { timeout: 600000 }, async () => {
    const src = fresh("src");
    mkdirSync(src);
    makeTree(src, { big: BIG });
    spawnSync("mkfifo", [join(src, "fifo")]);
    // A mount point inside the tree: written as a directory, not descended into.
    mkdirSync(join(src, "mnt"));
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", join(src, "mnt")]).status === 0;
    if (mounted) writeFileSync(join(src, "mnt", "inside"), "not archived");
    try {
      const before = rss(envd.pid);
      let peak = before;
      const timer = setInterval(() => { peak = Math.max(peak, rss(envd.pid)); }, 20);
      const file = fresh("dl") + ".tar";
      const r = await curlTo(file, ["-H", "Accept: application/x-tar", envd.url(q({ path: src }))]);
      clearInterval(timer);
      assert.equal(r.status, 200);
      if (process.env.ENVD_SANITIZED !== "ON") assert.ok(peak - before < 16 << 20, `RSS grew by ${peak - before} bytes`);

      const listing = spawnSync("tar", ["-tvf", file]).stdout.toString();
      assert.match(listing, /^p.* fifo$/m);  // a FIFO: a header, never opened (a read would hang)
      if (mounted) {
        assert.match(listing, /^d.* mnt\/$/m);
        assert.doesNotMatch(listing, /mnt\/inside/);
      }
      assert.match(listing, /^l.* sub\/rel-link -> \.\.\/a\.txt$/m);
      // The second name of a linked file is a hard link to the first (readdir order picks which).
      assert.match(listing, /^h.* (sub\/hard-a link to a\.txt|a\.txt link to sub\/hard-a)$/m);

      const out = fresh("out");
      mkdirSync(out);
      const x = spawnSync("tar", ["-xpf", file, "-C", out, "--xattrs", "--xattrs-include=user.*", "--exclude=fifo", "--exclude=mnt"]);
      assert.equal(x.status, 0, x.stderr.toString());
      if (mounted) spawnSync("umount", [join(src, "mnt")]);
      rmSync(join(src, "fifo"));
      rmSync(join(src, "mnt"), { recursive: true });
      assert.deepEqual(snapshot(out), snapshot(src));
    } finally {
      if (mounted) spawnSync("umount", ["-l", join(src, "mnt")]);
    }
  });
});

describe("archive upload", () => {
  it("GNU tar's archive (plain, gzip body, Content-Encoding: gzip) extracts to the same tree, owned by the user", { timeout: 600000 }, async () => {
    // The big file goes plain; the gzip forms carry the small tree (CI time).
    const src = fresh("usrc");
    mkdirSync(src);
    makeTree(src, { big: BIG });
    const small = fresh("usmall");
    mkdirSync(small);
    makeTree(small);
    const plain = fresh("u") + ".tar";
    assert.equal(spawnSync("tar", ["-cf", plain, "-C", src, "--xattrs", "--xattrs-include=user.*", "."]).status, 0);
    const gz = fresh("u") + ".tar.gz";
    assert.equal(spawnSync("tar", ["-czf", gz, "-C", small, "--xattrs", "--xattrs-include=user.*", "."]).status, 0);
    const cases = [
      { file: plain, tree: src, headers: ["-H", "Content-Type: application/x-tar"] },
      { file: gz, tree: small, headers: ["-H", "Content-Type: application/x-tar"] },
      { file: gz, tree: small, headers: ["-H", "Content-Type: application/gzip"] },
      { file: gz, tree: small, headers: ["-H", "Content-Type: application/x-tar", "-H", "Content-Encoding: gzip"] },
    ];
    for (const c of cases) {
      const target = fresh("dst");
      const before = rss(envd.pid);
      const r = await run("curl", ["-sS", "-X", "POST", ...c.headers, "--data-binary", `@${c.file}`, envd.url(q({ path: target, username: "user" }))]);
      const body = r.stdout.toString();
      const entries = JSON.parse(body);
      assert.ok(Array.isArray(entries), body);
      const grown = rss(envd.pid) - before;
      if (process.env.ENVD_SANITIZED !== "ON") assert.ok(grown < 16 << 20, `RSS grew by ${grown} bytes`);
      const want = snapshot(c.tree, { owners: false });
      assert.deepEqual(snapshot(target, { owners: false }), want, c.headers.join(" "));
      for (const [rel, e] of Object.entries(snapshot(target))) assert.deepEqual([e.uid, e.gid], [user.uid, user.gid], rel);
      const root = lstatSync(target);
      assert.deepEqual([root.uid, root.gid], [user.uid, user.gid]);
      // The answer lists what was written, in §6.6's shape.
      if (c.tree === src) assert.deepEqual(entries.find((e) => e.name === "big.bin"), { name: "big.bin", path: join(target, "big.bin"), type: "file" });
      assert.deepEqual(entries.find((e) => e.name === "empty"), { name: "empty", path: join(target, "sub/empty"), type: "dir" });
      assert.equal(entries.length, Object.keys(want).length);
      assert.deepEqual(leftovers(tmp), []);
    }
  });

  it("our own archive round-trips; an empty directory is a valid target, a non-empty one or a file is 409", { timeout: 60000 }, async () => {
    const src = fresh("rt");
    mkdirSync(src);
    makeTree(src);
    const file = fresh("rt") + ".tar";
    assert.equal((await curlTo(file, ["-H", "Accept: application/x-tar", envd.url(q({ path: src }))])).status, 200);
    const target = fresh("rt-dst");
    mkdirSync(target);  // empty: replaced
    let r = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", "-H", "Content-Type: application/x-tar", "--data-binary", `@${file}`, envd.url(q({ path: target }))]);
    assert.match(r.stdout.toString(), /\n200$/);
    assert.deepEqual(snapshot(target, { owners: false }), snapshot(src, { owners: false }));
    r = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", "-H", "Content-Type: application/x-tar", "--data-binary", `@${file}`, envd.url(q({ path: target }))]);
    assert.match(r.stdout.toString(), /"code":409,"message":"path '.*' exists and is not empty[\s\S]*\n409$/);
    const aFile = fresh("plainfile");
    writeFileSync(aFile, "x");
    r = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", "-H", "Content-Type: application/x-tar", "--data-binary", `@${file}`, envd.url(q({ path: aFile }))]);
    assert.match(r.stdout.toString(), /exists and is not a directory[\s\S]*\n409$/);
    assert.equal(readFileSync(aFile, "utf8"), "x");
    assert.deepEqual(leftovers(tmp), []);
  });
});

describe("over h2c", () => {
  it("download and upload of a tree over HTTP/2", { timeout: 60000 }, async () => {
    const src = fresh("h2src");
    mkdirSync(src);
    makeTree(src);
    const target = fresh("h2dst");
    const s = await h2Connect(envd.port);
    try {
      const dl = await h2Request(s, { method: "GET", path: q({ path: src }), headers: { accept: "application/x-tar" } });
      assert.equal(dl.status, 200);
      assert.equal(dl.headers["content-type"], "application/x-tar");
      const up = await h2Request(s, { path: q({ path: target }), headers: { "content-type": "application/x-tar" }, body: dl.body });
      assert.equal(up.status, 200, up.body.toString());
    } finally {
      s.close();
    }
    assert.deepEqual(snapshot(target, { owners: false }), snapshot(src, { owners: false }));
  });
});

describe("hostile archives", () => {
  let dir;
  let outside;
  // name → [expected status, message pattern]
  const cases = {
    "dotdot.tar": [400, /'\.\.' components are not allowed/],
    "absolute.tar": [400, /absolute names are not allowed/],
    "symlink-then-write.tar": [400, /archive entry 'l\/pwned'.*symlink/],
    "symlink-dir-then-write.tar": [400, /archive entry 'd\/x'/],
    "hardlink-out.tar": [400, /hard link to '\/etc\/passwd'/],
    "hardlink-dotdot.tar": [400, /hard link to '\.\.\/outside\/victim'/],
    "hardlink-to-symlink.tar": [400, /not a regular file extracted earlier/],
    "device.tar": [400, /character device entries are not allowed/],
    "fifo.tar": [400, /FIFO entries are not allowed/],
    "capability.tar": [400, /extended attribute 'security\.capability' is not allowed/],
    "trusted.tar": [400, /extended attribute 'trusted\.x' is not allowed/],
    "huge-pax.tar": [413, /pax header of \d+ bytes .* larger than the limit of 65536 bytes/],
    "bomb.tar.gz": [413, /more than \d+ bytes of file data \(--archive-max-bytes\)/],
    "truncated.tar": [400, /unexpected end of archive/],
    "not-a-tar.bin": [400, /not a tar archive/],
    "duplicate.tar": [400, /duplicate entry/],
  };

  before(async () => {
    dir = fresh("hostile");
    mkdirSync(dir);
    outside = join(tmp, "outside");
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, "victim"), "untouched");
    const script = String.raw`
import io, os, sys, tarfile, gzip
d, outside, bomb = sys.argv[1], sys.argv[2], int(sys.argv[3])
def tar(name, members, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(os.path.join(d, name), "w", format=fmt) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
def f(name, data=b"x", **kw):
    i = tarfile.TarInfo(name); i.size = len(data)
    for k, v in kw.items(): setattr(i, k, v)
    return (i, data)
def link(name, target, kind=tarfile.SYMTYPE):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target
    return (i, None)
def dirent(name):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755
    return (i, None)
tar("dotdot.tar", [f("ok"), f("../escaped")])
tar("absolute.tar", [f(os.path.join(outside, "abs"))])
tar("symlink-then-write.tar", [link("l", outside), f("l/pwned")])
tar("symlink-dir-then-write.tar", [dirent("d0"), link("d", "/tmp"), f("d/x")])
tar("hardlink-out.tar", [link("h", "/etc/passwd", tarfile.LNKTYPE)])
tar("hardlink-dotdot.tar", [link("h", "../outside/victim", tarfile.LNKTYPE)])
tar("hardlink-to-symlink.tar", [link("s", "/etc/passwd"), link("h", "s", tarfile.LNKTYPE)])
dev = tarfile.TarInfo("null"); dev.type = tarfile.CHRTYPE; dev.devmajor = 1; dev.devminor = 3
tar("device.tar", [f("before"), (dev, None)])
fifo = tarfile.TarInfo("p"); fifo.type = tarfile.FIFOTYPE
tar("fifo.tar", [(fifo, None)])
cap = tarfile.TarInfo("tool"); cap.size = 1; cap.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
tar("capability.tar", [(cap, b"x")])
tr = tarfile.TarInfo("t"); tr.size = 1; tr.pax_headers = {"SCHILY.xattr.trusted.x": "y"}
tar("trusted.tar", [(tr, b"x")])
hp = tarfile.TarInfo("h"); hp.size = 1; hp.pax_headers = {"comment": "c" * (1 << 20)}
tar("huge-pax.tar", [(hp, b"x")])
tar("duplicate.tar", [f("same", b"1"), link("same", "/etc/passwd")])
tar("setuid.tar", [f("suid", b"#!/bin/sh\n", mode=0o6755), dirent("sticky")], fmt=tarfile.USTAR_FORMAT)
# truncated: a valid archive cut inside the data of its second member
tar("full.tar", [f("a", b"a" * 3000), f("b", b"b" * 3000)])
with open(os.path.join(d, "full.tar"), "rb") as fh: whole = fh.read()
with open(os.path.join(d, "truncated.tar"), "wb") as fh: fh.write(whole[:5000])
with open(os.path.join(d, "not-a-tar.bin"), "wb") as fh: fh.write(b"PK\x03\x04" + b"z" * 2000)
# a gzip bomb: a small body that inflates to one file larger than --archive-max-bytes
class Zeros(io.RawIOBase):
    def __init__(self, n): self.n = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
with gzip.open(os.path.join(d, "bomb.tar.gz"), "wb", compresslevel=1) as g:
    with tarfile.open(fileobj=g, mode="w|", format=tarfile.PAX_FORMAT) as t:
        i = tarfile.TarInfo("zeros"); i.size = bomb
        t.addfile(i, io.BufferedReader(Zeros(bomb), 1 << 20))
`;
    const r = spawnSync("python3", ["-c", script, dir, outside, String(MAX_BYTES + (16 << 20))], { timeout: 120000 });
    assert.equal(r.status, 0, r.stderr?.toString());
  });

  for (const [name, [status, pattern]] of Object.entries(cases)) {
    it(`${name} → ${status}, nothing written or left behind`, { timeout: 60000 }, async () => {
      const parent = fresh("h");
      mkdirSync(parent);
      const target = join(parent, "target");
      const before = readdirSync(outside).sort();
      const ct = name.endsWith(".gz") ? "application/gzip" : "application/x-tar";
      const r = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", "-H", `Content-Type: ${ct}`, "--data-binary", `@${join(dir, name)}`, envd.url(q({ path: target, username: "user" }))]);
      const out = r.stdout.toString();
      const code = Number(out.slice(out.lastIndexOf("\n") + 1));
      const body = JSON.parse(out.slice(0, out.lastIndexOf("\n")));
      assert.equal(code, status, out);
      assert.equal(body.code, status);
      assert.match(body.message, pattern);
      assert.deepEqual(readdirSync(parent), [], "nothing left in the target's directory");
      assert.deepEqual(readdirSync(outside).sort(), before, "nothing written outside");
      assert.equal(readFileSync(join(outside, "victim"), "utf8"), "untouched");
      assert.ok(!existsSync(join(tmp, "escaped")) && !existsSync(join(parent, "escaped")));
    });
  }

  it("setuid, setgid and sticky bits are dropped", { timeout: 60000 }, async () => {
    const target = fresh("suid");
    const r = await run("curl", ["-sS", "-w", "\n%{http_code}", "-X", "POST", "-H", "Content-Type: application/x-tar", "--data-binary", `@${join(dir, "setuid.tar")}`, envd.url(q({ path: target }))]);
    assert.match(r.stdout.toString(), /\n200$/);
    assert.equal((lstatSync(join(target, "suid")).mode & 0o7777).toString(8), "755");
    assert.equal((lstatSync(join(target, "sticky")).mode & 0o7777).toString(8), "755");
  });
});

describe("with an access token", () => {
  let secured;
  const TOKEN = "archive-token";
  let src;
  const signature = (path, operation, token) =>
    "v1_" + createHash("sha256").update(`${path}:${operation}::${token}`, "utf8").digest("base64").replace(/=+$/, "");

  before(async () => {
    secured = await startEnvd();
    const r = await h1Request(secured.port, { path: "/init", headers: { "content-type": "application/json" }, body: JSON.stringify({ accessToken: TOKEN }) });
    assert.equal(r.status, 204);
    src = fresh("tok");
    mkdirSync(src);
    writeFileSync(join(src, "f"), "data");
  });
  after(async () => { await secured?.stop(); });

  it("archives need X-Access-Token: a signed URL never selects one", { timeout: 60000 }, async () => {
    const signed = (path, op) => "/files?" + new URLSearchParams({ path, signature: signature(path, op, TOKEN) });
    let r = await h1Request(secured.port, { method: "GET", path: signed(src, "read"), headers: { accept: "application/x-tar" } });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /is a directory/);
    r = await h1Request(secured.port, { method: "GET", path: q({ path: src }), headers: { accept: "application/x-tar", "x-access-token": TOKEN } });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "application/x-tar");
    const tarBytes = r.body;
    const target = fresh("tok-dst");
    r = await h1Request(secured.port, { path: signed(target, "write"), headers: { "content-type": "application/x-tar" }, body: tarBytes });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /unsupported content type/);
    assert.ok(!existsSync(target));
    r = await h1Request(secured.port, { path: q({ path: target }), headers: { "content-type": "application/x-tar", "x-access-token": TOKEN }, body: tarBytes });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(readFileSync(join(target, "f"), "utf8"), "data");
  });
});
