// The official e2b JS SDK's `sandbox.files.*` against envd's filesystem half (Filesystem RPCs and
// /files), in debug mode (E2B_DEBUG=true, http://localhost:49983, envd assumed 99.99.99, no
// token). The file holds /tmp/envd-49983.lock (ctest: RESOURCE_LOCK port49983). Issue 8 (Tests);
// contract §3.2, §3.3, §5, §6.5, §6.6.
//
// Every case runs as `root` and as `user`: envd runs as root, creates files for the requesting
// user and chowns them, so ownership is checked with fs.stat on this machine (the test and envd
// share it). envd does not enforce the user's permissions (nor does E2B's): there are no
// "permission denied" cases. Each user works in its own directory, removed at the end.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { FileNotFoundError, FileType, InvalidArgumentError, SandboxError } from 'e2b';
import { useDebugSandbox, rejection } from './harness.mjs';

const T = { timeout: 60_000 };
let sbx;
useDebugSandbox((_e, s) => {
  sbx = s;
});

const tag = crypto.randomBytes(4).toString('hex');
const HOME = { root: '/root', user: '/home/user' };
/** Each user's own test directory (absolute), and a relative one resolved against its HOME. */
const base = (who) => (who === 'root' ? `/tmp/sdk-js-files-${tag}` : `/home/user/sdk-js-files-${tag}`);
const relDir = `sdk-js-files-rel-${tag}`;
after(() => {
  for (const who of ['root', 'user']) {
    fs.rmSync(base(who), { recursive: true, force: true });
    fs.rmSync(`${HOME[who]}/${relDir}`, { recursive: true, force: true });
  }
});

const ids = {};
/** uid and gid of `who` on this machine. */
function idsOf(who) {
  if (!ids[who]) {
    const n = (flag) => Number(execFileSync('id', [flag, who], { encoding: 'utf8' }).trim());
    ids[who] = { uid: n('-u'), gid: n('-g') };
  }
  return ids[who];
}
function assertOwned(p, who) {
  const st = fs.statSync(p);
  const { uid, gid } = idsOf(who);
  assert.equal(st.uid, uid, `${p} uid`);
  assert.equal(st.gid, gid, `${p} gid`);
}
const enc = (s) => new TextEncoder().encode(s);
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
async function collect(stream) {
  const parts = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}
function streamOf(chunks) {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]);
      else c.close();
    },
  });
}
/** Go's FileMode.String() of a plain file or directory's permission bits. */
function permString(mode, dir) {
  const rwx = 'rwxrwxrwx';
  let s = dir ? 'd' : '-';
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? rwx[i] : '-';
  return s;
}

for (const who of ['root', 'user']) {
  const opts = { user: who };

  test(`${who}: write a string, read it as text, bytes, blob and stream; file and new parents owned by ${who}`, T, async () => {
    const dir = `${base(who)}/rw/new/deeper`;
    const p = `${dir}/a.txt`;
    const text = 'héllo, wörld ✓\nsecond line\n';
    const info = await sbx.files.write(p, text, opts);
    assert.equal(info.name, 'a.txt');
    assert.equal(info.path, p);
    assert.equal(info.type, FileType.FILE);
    assert.equal(info.metadata, undefined);
    assert.equal(fs.readFileSync(p, 'utf8'), text);
    assertOwned(p, who);
    assertOwned(dir, who);
    assertOwned(`${base(who)}/rw/new`, who);

    assert.equal(await sbx.files.read(p, opts), text);
    assert.equal(await sbx.files.read(p, { ...opts, format: 'text' }), text);
    const bytes = await sbx.files.read(p, { ...opts, format: 'bytes' });
    assert.ok(bytes instanceof Uint8Array);
    assert.deepEqual(Buffer.from(bytes), Buffer.from(text));
    const blob = await sbx.files.read(p, { ...opts, format: 'blob' });
    assert.ok(blob instanceof Blob);
    assert.equal(blob.size, Buffer.byteLength(text));
    assert.equal(await blob.text(), text);
    const stream = await sbx.files.read(p, { ...opts, format: 'stream' });
    assert.equal((await collect(stream)).toString('utf8'), text);

    // An empty file reads as empty in every format.
    const empty = `${dir}/empty`;
    await sbx.files.write(empty, '', opts);
    assert.equal(fs.statSync(empty).size, 0);
    assert.equal(await sbx.files.read(empty, opts), '');
    assert.equal((await sbx.files.read(empty, { ...opts, format: 'bytes' })).length, 0);
    assert.equal((await collect(await sbx.files.read(empty, { ...opts, format: 'stream' }))).length, 0);
  });

  test(`${who}: relative and ~ paths resolve against ${who}'s HOME (${HOME[who]})`, T, async () => {
    const info = await sbx.files.write(`${relDir}/r.txt`, 'relative', opts);
    const abs = `${HOME[who]}/${relDir}/r.txt`;
    assert.equal(info.path, abs);
    assert.equal(fs.readFileSync(abs, 'utf8'), 'relative');
    assertOwned(abs, who);
    assert.equal(await sbx.files.read(`~/${relDir}/r.txt`, opts), 'relative');
    assert.equal(await sbx.files.read(abs, opts), 'relative');
    assert.equal((await sbx.files.getInfo(`${relDir}/r.txt`, opts)).path, abs);
    const listed = await sbx.files.list(relDir, opts);
    assert.deepEqual(
      listed.map((e) => e.path),
      [abs],
    );
    await sbx.files.write(`~/${relDir}/t.txt`, 'tilde', opts);
    assert.equal(fs.readFileSync(`${HOME[who]}/${relDir}/t.txt`, 'utf8'), 'tilde');
  });

  test(`${who}: write several entries in one call (string, ArrayBuffer, Blob, ReadableStream), overwrite truncates`, T, async () => {
    const d = `${base(who)}/multi/x`;
    const bin = crypto.randomBytes(70_000);
    const infos = await sbx.files.write(
      [
        { path: `${d}/s.txt`, data: 'string entry' },
        { path: `${d}/ab.bin`, data: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length) },
        { path: `${d}/blob.txt`, data: new Blob(['blob ', 'entry']) },
        { path: `${d}/sub/dir/deep.txt`, data: 'deep' },
      ],
      opts,
    );
    assert.deepEqual(
      infos.map((i) => [i.name, i.path, i.type]),
      [
        ['s.txt', `${d}/s.txt`, FileType.FILE],
        ['ab.bin', `${d}/ab.bin`, FileType.FILE],
        ['blob.txt', `${d}/blob.txt`, FileType.FILE],
        ['deep.txt', `${d}/sub/dir/deep.txt`, FileType.FILE],
      ],
    );
    assert.equal(fs.readFileSync(`${d}/s.txt`, 'utf8'), 'string entry');
    assert.deepEqual(fs.readFileSync(`${d}/ab.bin`), bin);
    assert.equal(fs.readFileSync(`${d}/blob.txt`, 'utf8'), 'blob entry');
    assert.equal(fs.readFileSync(`${d}/sub/dir/deep.txt`, 'utf8'), 'deep');
    for (const p of [`${d}/s.txt`, `${d}/ab.bin`, `${d}/sub/dir`, `${d}/sub/dir/deep.txt`]) assertOwned(p, who);

    // writeFiles is the same call; a stream entry in a list switches to octet-stream uploads.
    const more = await sbx.files.writeFiles(
      [
        { path: `${d}/s.txt`, data: 'short' },
        { path: `${d}/streamed.txt`, data: streamOf([enc('str'), enc('eamed')]) },
      ],
      opts,
    );
    assert.deepEqual(
      more.map((i) => i.path),
      [`${d}/s.txt`, `${d}/streamed.txt`],
    );
    assert.equal(fs.readFileSync(`${d}/s.txt`, 'utf8'), 'short', 'an overwrite with shorter data truncates');
    assert.equal(fs.readFileSync(`${d}/streamed.txt`, 'utf8'), 'streamed');
    assertOwned(`${d}/streamed.txt`, who);
  });

  test(`${who}: a 3 MiB ReadableStream upload and a streamed read of it`, T, async () => {
    const p = `${base(who)}/stream/big.bin`;
    const chunks = Array.from({ length: 48 }, () => crypto.randomBytes(64 * 1024));
    const whole = Buffer.concat(chunks);
    const info = await sbx.files.write(p, streamOf(chunks), opts);
    assert.equal(info.path, p);
    assert.equal(fs.statSync(p).size, whole.length);
    assert.equal(sha(fs.readFileSync(p)), sha(whole));
    assertOwned(p, who);
    const back = await collect(await sbx.files.read(p, { ...opts, format: 'stream' }));
    assert.equal(back.length, whole.length);
    assert.equal(sha(back), sha(whole));
    // useOctetStream with a plain string, and multipart forced for a Blob: same result.
    await sbx.files.write(p, 'octet', { ...opts, useOctetStream: true });
    assert.equal(fs.readFileSync(p, 'utf8'), 'octet');
    await sbx.files.write(p, new Blob(['multipart']), { ...opts, useOctetStream: false });
    assert.equal(fs.readFileSync(p, 'utf8'), 'multipart');
    assertOwned(p, who);
  });

  test(`${who}: gzip uploads and gzip downloads round-trip`, T, async () => {
    const p = `${base(who)}/gz/data.bin`;
    const data = Buffer.concat([crypto.randomBytes(100_000), Buffer.alloc(200_000, 'z')]);
    await sbx.files.write(p, new Blob([data]), { ...opts, gzip: true });
    assert.equal(sha(fs.readFileSync(p)), sha(data), 'stored decompressed');
    assertOwned(p, who);
    const bytes = await sbx.files.read(p, { ...opts, format: 'bytes', gzip: true });
    assert.equal(sha(Buffer.from(bytes)), sha(data));
    const streamed = await collect(await sbx.files.read(p, { ...opts, format: 'stream', gzip: true }));
    assert.equal(sha(streamed), sha(data));
    await sbx.files.write(p, streamOf([enc('gzip '), enc('stream')]), { ...opts, gzip: true });
    assert.equal(await sbx.files.read(p, { ...opts, gzip: true }), 'gzip stream');
  });

  test(`${who}: metadata on write, getInfo and list; kept by rename; replaced or cleared by an overwrite`, T, async () => {
    const d = `${base(who)}/meta`;
    const info = await sbx.files.write(`${d}/m.txt`, 'm', { ...opts, metadata: { Owner: 'Team-A', k2: 'v 2 = ok' } });
    assert.deepEqual(info.metadata, { owner: 'Team-A', k2: 'v 2 = ok' }, 'keys lowercased, values kept');
    assert.deepEqual((await sbx.files.getInfo(`${d}/m.txt`, opts)).metadata, { owner: 'Team-A', k2: 'v 2 = ok' });
    const listed = (await sbx.files.list(d, opts)).find((e) => e.name === 'm.txt');
    assert.deepEqual(listed.metadata, { owner: 'Team-A', k2: 'v 2 = ok' });
    assertOwned(`${d}/m.txt`, who);

    const moved = await sbx.files.rename(`${d}/m.txt`, `${d}/n.txt`, opts);
    assert.deepEqual(moved.metadata, { owner: 'Team-A', k2: 'v 2 = ok' }, 'rename keeps metadata');
    assert.deepEqual((await sbx.files.getInfo(`${d}/n.txt`, opts)).metadata, { owner: 'Team-A', k2: 'v 2 = ok' });

    const replaced = await sbx.files.write(`${d}/n.txt`, 'n', { ...opts, metadata: { other: 'x' } });
    assert.deepEqual(replaced.metadata, { other: 'x' });
    assert.deepEqual((await sbx.files.getInfo(`${d}/n.txt`, opts)).metadata, { other: 'x' }, 'an overwrite replaces the set');

    const cleared = await sbx.files.write(`${d}/n.txt`, 'plain', opts);
    assert.equal(cleared.metadata, undefined);
    assert.equal((await sbx.files.getInfo(`${d}/n.txt`, opts)).metadata, undefined, 'an overwrite without metadata clears it');
    assert.equal(fs.readFileSync(`${d}/n.txt`, 'utf8'), 'plain');

    // Several files in one request all get the same metadata.
    const many = await sbx.files.write(
      [
        { path: `${d}/p1`, data: '1' },
        { path: `${d}/p2`, data: '2' },
      ],
      { ...opts, metadata: { batch: 'b1' } },
    );
    assert.deepEqual(
      many.map((i) => i.metadata),
      [{ batch: 'b1' }, { batch: 'b1' }],
    );
    assert.deepEqual((await sbx.files.getInfo(`${d}/p2`, opts)).metadata, { batch: 'b1' });
    // The SDK refuses keys that cannot be xattr names before any request.
    const bad = await rejection(() => sbx.files.write(`${d}/bad`, 'x', { ...opts, metadata: { 'bad key': 'v' } }));
    assert.ok(bad instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${bad}`);
  });

  test(`${who}: list with depth 1, 2 and 3 (pre-order, lexical; entries describe the files)`, T, async () => {
    const d = `${base(who)}/tree`;
    await sbx.files.write(
      [
        { path: `${d}/b.txt`, data: 'bb' },
        { path: `${d}/a/one.txt`, data: '1' },
        { path: `${d}/a/deep/two.txt`, data: '22' },
        { path: `${d}/c/three.txt`, data: '333' },
      ],
      opts,
    );
    const rel = (entries) => entries.map((e) => e.path.slice(d.length + 1));
    assert.deepEqual(rel(await sbx.files.list(d, opts)), ['a', 'b.txt', 'c']);
    assert.deepEqual(rel(await sbx.files.list(d, { ...opts, depth: 1 })), ['a', 'b.txt', 'c']);
    assert.deepEqual(rel(await sbx.files.list(d, { ...opts, depth: 2 })), ['a', 'a/deep', 'a/one.txt', 'b.txt', 'c', 'c/three.txt']);
    const all = await sbx.files.list(d, { ...opts, depth: 3 });
    assert.deepEqual(rel(all), ['a', 'a/deep', 'a/deep/two.txt', 'a/one.txt', 'b.txt', 'c', 'c/three.txt']);
    for (const e of all) {
      const st = fs.statSync(e.path);
      assert.equal(e.name, e.path.split('/').pop());
      assert.equal(e.type, st.isDirectory() ? FileType.DIR : FileType.FILE, e.path);
      assert.equal(e.owner, who, e.path);
      assert.equal(e.group, who, e.path);
      assert.equal(e.mode, st.mode & 0o777, e.path);
      assert.equal(e.permissions, permString(st.mode & 0o777, st.isDirectory()), e.path);
      if (!st.isDirectory()) assert.equal(e.size, st.size, e.path);
    }
    const err = await rejection(() => sbx.files.list(d, { ...opts, depth: 0 }));
    assert.ok(err instanceof InvalidArgumentError, `depth 0: expected InvalidArgumentError, got ${err}`);
  });

  test(`${who}: exists and getInfo (file, directory, symlink)`, T, async () => {
    const d = `${base(who)}/info`;
    const p = `${d}/f.txt`;
    await sbx.files.write(p, '12345', opts);
    assert.equal(await sbx.files.exists(p, opts), true);
    assert.equal(await sbx.files.exists(d, opts), true);
    assert.equal(await sbx.files.exists(`${d}/missing`, opts), false);
    assert.equal(await sbx.files.exists(`${d}/missing/deeper`, opts), false);

    const st = fs.statSync(p);
    const fi = await sbx.files.getInfo(p, opts);
    assert.equal(fi.name, 'f.txt');
    assert.equal(fi.path, p);
    assert.equal(fi.type, FileType.FILE);
    assert.equal(fi.size, 5);
    assert.equal(fi.mode, st.mode & 0o777);
    assert.equal(fi.permissions, permString(st.mode & 0o777, false));
    assert.equal(fi.owner, who);
    assert.equal(fi.group, who);
    assert.ok(fi.modifiedTime instanceof Date);
    assert.equal(fi.modifiedTime.getTime(), Math.floor(st.mtimeMs));
    assert.equal(fi.symlinkTarget, undefined);

    const di = await sbx.files.getInfo(d, opts);
    assert.equal(di.type, FileType.DIR);
    assert.equal(di.name, 'info');
    assert.equal(di.permissions[0], 'd');
    assert.equal(di.owner, who);

    fs.symlinkSync(p, `${d}/link`);
    const li = await sbx.files.getInfo(`${d}/link`, opts);
    assert.equal(li.path, `${d}/link`, 'the path of the link, not of its target');
    assert.equal(li.symlinkTarget, p);
    assert.equal(li.permissions[0], 'L');
    assert.equal(await sbx.files.read(`${d}/link`, opts), '12345', 'reads follow the link');
  });

  test(`${who}: makeDir → true, again → false; parents created and owned by ${who}`, T, async () => {
    const d = `${base(who)}/mk/a/b/c`;
    assert.equal(await sbx.files.makeDir(d, opts), true);
    assert.ok(fs.statSync(d).isDirectory());
    for (const p of [d, `${base(who)}/mk/a/b`, `${base(who)}/mk/a`, `${base(who)}/mk`]) assertOwned(p, who);
    assert.equal(await sbx.files.makeDir(d, opts), false);
    const info = await sbx.files.getInfo(d, opts);
    assert.equal(info.type, FileType.DIR);
    assert.equal(info.owner, who);
    await sbx.files.write(`${base(who)}/mk/file`, 'x', opts);
    const err = await rejection(() => sbx.files.makeDir(`${base(who)}/mk/file`, opts));
    assert.ok(err instanceof InvalidArgumentError, `makeDir over a file: expected InvalidArgumentError, got ${err}`);
  });

  test(`${who}: rename a file and a directory (into new parents); the old path is gone`, T, async () => {
    const d = `${base(who)}/mv`;
    await sbx.files.write(`${d}/src.txt`, 'moving', opts);
    const info = await sbx.files.rename(`${d}/src.txt`, `${d}/dst.txt`, opts);
    assert.equal(info.name, 'dst.txt');
    assert.equal(info.path, `${d}/dst.txt`);
    assert.equal(info.type, FileType.FILE);
    assert.equal(info.size, 6);
    assert.equal(await sbx.files.exists(`${d}/src.txt`, opts), false);
    assert.equal(await sbx.files.read(`${d}/dst.txt`, opts), 'moving');
    assertOwned(`${d}/dst.txt`, who);

    const moved = await sbx.files.rename(`${d}/dst.txt`, `${d}/new/parent/dst.txt`, opts);
    assert.equal(moved.path, `${d}/new/parent/dst.txt`);
    assert.equal(fs.readFileSync(`${d}/new/parent/dst.txt`, 'utf8'), 'moving');

    await sbx.files.write(`${d}/tree/x/y.txt`, 'y', opts);
    const dir = await sbx.files.rename(`${d}/tree`, `${d}/tree2`, opts);
    assert.equal(dir.type, FileType.DIR);
    assert.equal(fs.readFileSync(`${d}/tree2/x/y.txt`, 'utf8'), 'y');
    assert.equal(fs.existsSync(`${d}/tree`), false);

    // Over an existing file: replaced (rename(2) semantics).
    await sbx.files.write(`${d}/a`, 'A', opts);
    await sbx.files.write(`${d}/b`, 'B', opts);
    await sbx.files.rename(`${d}/a`, `${d}/b`, opts);
    assert.equal(fs.readFileSync(`${d}/b`, 'utf8'), 'A');
    assert.equal(fs.existsSync(`${d}/a`), false);
  });

  test(`${who}: remove a file and a whole directory; a missing path is no error`, T, async () => {
    const d = `${base(who)}/rm`;
    await sbx.files.write(
      [
        { path: `${d}/f.txt`, data: 'f' },
        { path: `${d}/dir/a/b.txt`, data: 'b' },
      ],
      opts,
    );
    await sbx.files.remove(`${d}/f.txt`, opts);
    assert.equal(fs.existsSync(`${d}/f.txt`), false);
    assert.equal(await sbx.files.exists(`${d}/f.txt`, opts), false);
    await sbx.files.remove(`${d}/dir`, opts);
    assert.equal(fs.existsSync(`${d}/dir`), false);
    await sbx.files.remove(`${d}/never-existed`, opts);
    assert.deepEqual(fs.readdirSync(d), []);
  });

  test(`${who}: error types — FileNotFoundError for missing paths, InvalidArgumentError for directory/file mix-ups`, T, async () => {
    const d = `${base(who)}/err`;
    await sbx.files.write(`${d}/file.txt`, 'keep', opts);
    await sbx.files.makeDir(`${d}/dir`, opts);
    const missing = `${d}/missing.txt`;

    const notFound = [
      ['read', () => sbx.files.read(missing, opts)],
      ['read bytes', () => sbx.files.read(missing, { ...opts, format: 'bytes' })],
      ['read stream', () => sbx.files.read(missing, { ...opts, format: 'stream' })],
      ['getInfo', () => sbx.files.getInfo(missing, opts)],
      ['list', () => sbx.files.list(`${d}/missing-dir`, opts)],
      ['rename', () => sbx.files.rename(missing, `${d}/other`, opts)],
    ];
    for (const [what, fn] of notFound) {
      const e = await rejection(fn);
      assert.ok(e instanceof FileNotFoundError, `${what}: expected FileNotFoundError, got ${e}`);
      assert.ok(e.message.includes(missing) || e.message.includes('missing-dir'), `${what}: message names the path: ${e.message}`);
    }
    const invalid = [
      ['read a directory', () => sbx.files.read(`${d}/dir`, opts)],
      ['write onto a directory', () => sbx.files.write(`${d}/dir`, 'x', opts)],
      ['list a file', () => sbx.files.list(`${d}/file.txt`, opts)],
      ['makeDir over a file', () => sbx.files.makeDir(`${d}/file.txt`, opts)],
    ];
    for (const [what, fn] of invalid) {
      const e = await rejection(fn);
      assert.ok(e instanceof InvalidArgumentError, `${what}: expected InvalidArgumentError, got ${e}`);
    }
    // A file where a parent directory is expected: an error (envd says 500), nothing changed.
    const e = await rejection(() => sbx.files.write(`${d}/file.txt/below`, 'x', opts));
    assert.ok(e instanceof SandboxError, `write below a file: expected SandboxError, got ${e}`);
    assert.equal(fs.readFileSync(`${d}/file.txt`, 'utf8'), 'keep');
    assert.ok(fs.statSync(`${d}/dir`).isDirectory());
  });

  test(`${who}: names with spaces, quotes, +, %, & and non-ASCII; parallel writes into one new directory`, T, async () => {
    const d = `${base(who)}/names`;
    const names = ['a b.txt', 'q"uote.txt', 'plus+sign', '100%', 'x&y=z', 'ünï cødé ✓.txt', "it's"];
    for (const n of names) {
      const info = await sbx.files.write(`${d}/${n}`, `content of ${n}`, opts);
      assert.equal(info.name, n);
      assert.equal(info.path, `${d}/${n}`);
      assert.equal(await sbx.files.read(`${d}/${n}`, opts), `content of ${n}`);
      assert.equal(await sbx.files.exists(`${d}/${n}`, opts), true);
    }
    assert.deepEqual(fs.readdirSync(d).sort(), [...names].sort());
    assert.deepEqual(
      (await sbx.files.list(d, opts)).map((e) => e.name).sort(),
      [...names].sort(),
    );
    // In a multi-entry (multipart) write the SDK sends `"` in a part's filename as %22 (form
    // encoding) and envd keeps the name verbatim, as E2B's does.
    const multi = await sbx.files.write(
      [
        { path: `${d}/m"1`, data: '1' },
        { path: `${d}/m 2`, data: '2' },
      ],
      opts,
    );
    assert.deepEqual(
      multi.map((i) => i.name),
      ['m%221', 'm 2'],
    );

    // The SDK's Promise.all over single writes: every parent is created by a racing request.
    const par = `${base(who)}/par/new/dir`;
    const res = await Promise.all(Array.from({ length: 16 }, (_, i) => sbx.files.write(`${par}/f${i}`, `n${i}`, opts)));
    assert.equal(res.length, 16);
    for (let i = 0; i < 16; i++) assert.equal(fs.readFileSync(`${par}/f${i}`, 'utf8'), `n${i}`);
    assertOwned(par, who);
    assertOwned(`${base(who)}/par/new`, who);
  });
}
