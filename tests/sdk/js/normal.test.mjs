// The official e2b JS SDK in normal mode: the control plane is ../fake_api.mjs on loopback
// (E2B_API_URL, a dummy E2B_API_KEY), and E2B_SANDBOX_URL points the SDK's envd traffic at
// our envd on a free port. Sandbox.create() makes the fake POST /init {accessToken} to envd,
// as the orchestrator does, so everything after runs in secure (token) mode, with the
// envdVersion our binary prints for `-version`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Sandbox, AuthenticationError, FileNotFoundError, FilesystemEventType, SandboxError, TemplateError } from 'e2b';
import { startEnvd, startFakeApi, envdVersion, compareVersions, rejection, waitFor, REF } from './harness.mjs';

const version = envdVersion();
let envd;
let api;

before(async () => {
  envd = await startEnvd({ port: 0 });
  api = await startFakeApi({ envdUrl: envd.url, envdVersion: version });
  process.env.E2B_API_URL = api.apiUrl;
  process.env.E2B_API_KEY = 'e2b_' + crypto.randomBytes(20).toString('hex');
  process.env.E2B_SANDBOX_URL = envd.url;
});

const tag = crypto.randomBytes(4).toString('hex');
const dirs = [`/tmp/sdk-js-normal-${tag}`, `/home/user/sdk-js-normal-${tag}`];
after(async () => {
  await api?.close();
  await envd?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const uidOf = (who) => Number(execFileSync('id', ['-u', who], { encoding: 'utf8' }).trim());

const LIST_DIR = '/filesystem.Filesystem/ListDir';
const rawListDir = (headers = {}) =>
  fetch(envd.url + LIST_DIR, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ path: '/' }),
    signal: AbortSignal.timeout(10_000),
  });

test('create() goes through the fake control plane and hands the SDK a token and our version', async () => {
  const sbx = await Sandbox.create({ requestTimeoutMs: 15_000 });
  assert.equal(sbx.sandboxId, api.sandboxId);
  assert.match(sbx.envdAccessToken ?? '', /^[0-9a-f]{48}$/);
  assert.equal(sbx.envdApi.version, version);
  assert.ok(api.calls.includes('POST /v2/sandboxes'));
  assert.equal(await sbx.isRunning(), true);
});

test('token path: SDK calls carry X-Access-Token and pass the gate; raw calls without it get 401', async () => {
  const sbx = await Sandbox.create({ requestTimeoutMs: 15_000 });
  // The SDK's call passes the token gate and is answered.
  const entries = await sbx.files.list('/');
  assert.ok(entries.some((e) => e.name === 'tmp' && e.path === '/tmp'), 'ListDir / lists /tmp');

  // Without the header, or with a wrong token: 401 with envd's plain JSON error.
  for (const headers of [{}, { 'X-Access-Token': 'wrong' + sbx.envdAccessToken }]) {
    const r = await rawListDir(headers);
    assert.equal(r.status, 401, JSON.stringify(headers));
    const body = await r.json();
    assert.equal(body.code, 401);
    assert.match(body.message, /unauthorized access, please provide a valid access token/);
  }
  // With the token, the same raw call reaches the RPC layer (not 401).
  const ok = await rawListDir({ 'X-Access-Token': sbx.envdAccessToken });
  assert.notEqual(ok.status, 401);
  // /health stays open.
  const h = await fetch(envd.url + '/health', { signal: AbortSignal.timeout(10_000) });
  assert.equal(h.status, 204);
});

test('connect() by id gets the same token; an SDK without the token is refused with AuthenticationError', async () => {
  const created = await Sandbox.create({ requestTimeoutMs: 15_000 });
  const sbx = await Sandbox.connect(created.sandboxId, { requestTimeoutMs: 15_000 });
  assert.equal(sbx.envdAccessToken, created.envdAccessToken);
  assert.ok(api.calls.includes(`POST /v2/sandboxes/${created.sandboxId}/connect`));
  // A debug-mode SDK sends no token: pointed at this secure envd, every RPC is refused.
  const tokenless = await Sandbox.connect('x', { debug: true, sandboxUrl: envd.url });
  const err = await rejection(() => tokenless.files.list('/'));
  assert.ok(err instanceof AuthenticationError, `expected AuthenticationError, got ${err}`);
  assert.equal(await tokenless.isRunning(), true); // /health is exempt
});

test('user header in secure mode: `user` passes, an unknown user is unauthenticated', async () => {
  const sbx = await Sandbox.create({ requestTimeoutMs: 15_000 });
  try {
    await sbx.files.list('/', { user: 'user' });
  } catch (e) {
    assert.ok(!(e instanceof AuthenticationError), `user: ${e}`);
  }
  const err = await rejection(() => sbx.files.list('/', { user: 'no-such-user-e2b' }));
  assert.ok(err instanceof AuthenticationError, `expected AuthenticationError, got ${err}`);
  assert.match(err.message, /invalid username: 'no-such-user-e2b'/);
});

test(`version gates follow our -version (${version})`, async () => {
  const sbx = await Sandbox.create({ requestTimeoutMs: 15_000 });
  // Every feature the SDK gates on the version: what our version claims decides whether
  // the SDK refuses client-side (TemplateError) or sends the call to envd.
  const gates = [
    ['0.1.4', { recursive: true }, /recursive watching/],
    ['0.6.3', { includeEntry: true }, /include entry info/],
    ['0.6.4', { allowNetworkMounts: true }, /network mounts/],
  ];
  assert.ok(compareVersions(version, '0.4.0') >= 0, 'below 0.4.0 the SDK sends user "user" when none is given');
  for (const [min, opts, msg] of gates) {
    let handle;
    try {
      handle = await sbx.files.watchDir('/tmp', () => {}, { ...opts, requestTimeoutMs: 10_000, timeoutMs: 10_000 });
      assert.ok(compareVersions(version, min) >= 0, `${JSON.stringify(opts)} passed the ${min} gate at ${version}`);
    } catch (e) {
      if (compareVersions(version, min) < 0) {
        assert.ok(e instanceof TemplateError, `${JSON.stringify(opts)}: expected TemplateError, got ${e}`);
        assert.match(e.message, msg);
      } else {
        assert.ok(!(e instanceof TemplateError), `${JSON.stringify(opts)}: gate ${min} fired at ${version}`);
        assert.ok(e instanceof SandboxError, `expected envd's answer, got ${e}`);
      }
    } finally {
      await handle?.stop();
    }
  }
  // File metadata on upload needs 0.6.2.
  if (compareVersions(version, '0.6.2') < 0) {
    const err = await rejection(() => sbx.files.write('/tmp/sdk-meta', 'x', { metadata: { a: 'b' } }));
    assert.ok(err instanceof TemplateError, `expected TemplateError, got ${err}`);
  }
});

test(`includeEntry and allowNetworkMounts pass the SDK's gates at ${version} and envd honours them`, async () => {
  // Both gates (0.6.3, 0.6.4) open from our -version on: the SDK sends the fields instead of
  // refusing client-side, and the watch delivers entries.
  assert.ok(compareVersions(version, '0.6.4') >= 0, `-version ${version} is below 0.6.4`);
  const sbx = await Sandbox.create({ requestTimeoutMs: 15_000 });
  const d = `${dirs[0]}/watch-gates`;
  fs.mkdirSync(d, { recursive: true });
  const withEntry = [];
  const plain = [];
  const h1 = await sbx.files.watchDir(d, (e) => withEntry.push(e), { includeEntry: true, allowNetworkMounts: true, requestTimeoutMs: 10_000 });
  const h2 = await sbx.files.watchDir(d, (e) => plain.push(e), { allowNetworkMounts: true, requestTimeoutMs: 10_000 });
  try {
    await sbx.files.write(`${d}/seen.txt`, 'entry');
    const isCreate = (e) => e.type === FilesystemEventType.CREATE && e.name === 'seen.txt';
    // The entry is a stat at send time: remove the file only once both creates are in.
    await waitFor(() => withEntry.some(isCreate) && plain.some(isCreate), { what: 'the create events' });
    const create = withEntry.find(isCreate);
    assert.equal(create.entry?.name, 'seen.txt');
    assert.equal(create.entry?.path, `${d}/seen.txt`);
    assert.equal(plain.find(isCreate).entry, undefined, 'no entry unless asked');
    await sbx.files.remove(`${d}/seen.txt`);
    await waitFor(() => withEntry.some((e) => e.type === FilesystemEventType.REMOVE), { what: 'the remove event' });
    assert.equal(withEntry.find((e) => e.type === FilesystemEventType.REMOVE).entry, undefined);
  } finally {
    await h1.stop();
    await h2.stop();
  }
});

test('an envdVersion below 0.1.0 is refused by the SDK at create time', async () => {
  const own = await startEnvd({ port: 0 }); // a fresh envd: /init with a new token
  const old = await startFakeApi({ envdUrl: own.url, envdVersion: '0.0.9' });
  try {
    const err = await rejection(() => Sandbox.create({ apiUrl: old.apiUrl, requestTimeoutMs: 15_000 }));
    assert.ok(err instanceof TemplateError, `expected TemplateError, got ${err}`);
    assert.ok(old.calls.includes(`DELETE /sandboxes/${old.sandboxId}`), 'the SDK kills the sandbox it refuses');
  } finally {
    await old.close();
    await own.stop();
  }
});

test('isRunning(): true through the edge while envd runs, false (edge 502) once it is stopped', async () => {
  // A separate envd and fake, so stopping it does not affect the other tests.
  const own = await startEnvd({ port: 0 });
  const ownApi = await startFakeApi({ envdUrl: own.url, envdVersion: version });
  try {
    const opts = { apiUrl: ownApi.apiUrl, sandboxUrl: ownApi.edgeUrl, requestTimeoutMs: 15_000 };
    const sbx = await Sandbox.create(opts);
    assert.equal(await sbx.isRunning(), true);
    const { code } = await own.stop();
    if (!REF) assert.equal(code, 0, 'envd exits 0 on SIGTERM'); // the reference dies of the signal
    assert.equal(await sbx.isRunning(), false);
  } finally {
    await ownApi.close();
    await own.stop();
  }
});

test(`files through the control plane (token set, version ${version}): write, read, list, metadata gate`, async () => {
  const sbx = await Sandbox.create({ requestTimeoutMs: 15_000 });
  for (const [who, d] of [
    ['root', dirs[0]],
    ['user', dirs[1]],
  ]) {
    const opts = { user: who };
    const info = await sbx.files.write(`${d}/rw/a.txt`, 'through the fake ✓', opts);
    assert.equal(info.path, `${d}/rw/a.txt`);
    assert.equal(fs.statSync(`${d}/rw/a.txt`).uid, uidOf(who));
    assert.equal(fs.statSync(`${d}/rw`).uid, uidOf(who));
    assert.equal(await sbx.files.read(`${d}/rw/a.txt`, opts), 'through the fake ✓');
    assert.deepEqual(Buffer.from(await sbx.files.read(`${d}/rw/a.txt`, { ...opts, format: 'bytes' })), Buffer.from('through the fake ✓'));
    // gzip implies octet-stream from 0.5.7 on (the SDK falls back to multipart below): same file.
    await sbx.files.write(`${d}/rw/gz.txt`, 'gzip body', { ...opts, gzip: true });
    assert.equal(await sbx.files.read(`${d}/rw/gz.txt`, { ...opts, gzip: true }), 'gzip body');
    await sbx.files.write([{ path: `${d}/rw/m1`, data: '1' }, { path: `${d}/rw/sub/m2`, data: new Blob(['2']) }], opts);
    assert.deepEqual(
      (await sbx.files.list(`${d}/rw`, { ...opts, depth: 2 })).map((e) => [e.name, e.owner]),
      [
        ['a.txt', who],
        ['gz.txt', who],
        ['m1', who],
        ['sub', who],
        ['m2', who],
      ],
    );
    assert.equal(await sbx.files.exists(`${d}/rw/sub/m2`, opts), true);
    const e = await rejection(() => sbx.files.read(`${d}/rw/missing`, opts));
    assert.ok(e instanceof FileNotFoundError, `expected FileNotFoundError, got ${e}`);
    // Metadata needs envd 0.6.2: the SDK decides from our version.
    if (compareVersions(version, '0.6.2') >= 0) {
      const m = await sbx.files.write(`${d}/rw/meta`, 'm', { ...opts, metadata: { k: 'v' } });
      assert.deepEqual(m.metadata, { k: 'v' });
      assert.deepEqual((await sbx.files.getInfo(`${d}/rw/meta`, opts)).metadata, { k: 'v' });
    } else {
      const err = await rejection(() => sbx.files.write(`${d}/rw/meta`, 'm', { ...opts, metadata: { k: 'v' } }));
      assert.ok(err instanceof TemplateError, `expected TemplateError, got ${err}`);
    }
  }
});

test('uploadUrl/downloadUrl: signed URLs (token set) work with plain fetch, for odd paths, as root and as user', async () => {
  const sbx = await Sandbox.create({ requestTimeoutMs: 15_000 });
  const names = ['plain.txt', 'a b.txt', 'plus+sign.txt', '100% sure.txt', 'x&y=z.txt', 'ünï cødé ✓.txt', 'q"uote.txt'];
  const upload = (url, body, filename = 'upload.bin') => {
    const form = new FormData();
    form.append('file', new Blob([body]), filename);
    return fetch(url, { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) });
  };
  const get = (url) => fetch(url, { signal: AbortSignal.timeout(10_000) });
  for (const [who, d] of [
    ['root', dirs[0]],
    ['user', dirs[1]],
  ]) {
    for (const [i, n] of names.entries()) {
      const p = `${d}/signed/${n}`;
      const body = `signed content ${i} for ${who}`;
      // The expiring form for half the names.
      const urlOpts = i % 2 ? { user: who, useSignatureExpiration: 120 } : { user: who };
      const up = await sbx.uploadUrl(p, urlOpts);
      const u = new URL(up);
      assert.equal(u.searchParams.get('path'), p);
      assert.equal(u.searchParams.get('username'), who);
      assert.match(u.searchParams.get('signature'), /^v1_/);
      assert.equal(u.searchParams.has('signature_expiration'), Boolean(i % 2));
      const r = await upload(up, body);
      assert.equal(r.status, 200, `${p}: ${await r.clone().text()}`);
      const written = await r.json();
      assert.equal(written[0].path, p);
      assert.equal(fs.readFileSync(p, 'utf8'), body);
      assert.equal(fs.statSync(p).uid, uidOf(who), `${p} owner`);

      const down = await sbx.downloadUrl(p, urlOpts);
      const g = await get(down);
      assert.equal(g.status, 200, `${p}: ${await g.clone().text()}`);
      assert.equal(await g.text(), body);
      // A read signature is not a write signature, and the other way round.
      assert.equal((await upload(down, 'nope')).status, 401, 'download URL used for upload');
      assert.equal((await get(up)).status, 401, 'upload URL used for download');
    }
    const p = `${d}/signed/plain.txt`;
    const down = new URL(await sbx.downloadUrl(p, { user: who }));
    // Tampered: another path, another user, no signature, a wrong one.
    const variants = [
      (u) => u.searchParams.set('path', `${d}/signed/a b.txt`),
      (u) => u.searchParams.set('username', who === 'root' ? 'user' : 'root'),
      (u) => u.searchParams.delete('signature'),
      (u) => u.searchParams.set('signature', u.searchParams.get('signature').slice(0, -2) + 'xx'),
    ];
    for (const change of variants) {
      const u = new URL(down);
      change(u);
      const r = await get(u);
      assert.equal(r.status, 401, `${u}: ${r.status}`);
    }
    // Expired: a signature_expiration in the past.
    const expired = await get(await sbx.downloadUrl(p, { user: who, useSignatureExpiration: -60 }));
    assert.equal(expired.status, 401);
    // The token header is the alternative to a signature.
    const plain = new URL(down);
    plain.searchParams.delete('signature');
    const withToken = await fetch(plain, { headers: { 'X-Access-Token': sbx.envdAccessToken }, signal: AbortSignal.timeout(10_000) });
    assert.equal(withToken.status, 200);
    assert.equal(await withToken.text(), 'signed content 0 for ' + who);
    // No path in the URL: the target is the multipart part's filename (signed over path "").
    const noPath = await sbx.uploadUrl(undefined, { user: who });
    assert.equal(new URL(noPath).searchParams.has('path'), false);
    const r = await upload(noPath, 'named by the part', `${d}/signed/from-part.txt`);
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(fs.readFileSync(`${d}/signed/from-part.txt`, 'utf8'), 'named by the part');
    assert.equal(fs.statSync(`${d}/signed/from-part.txt`).uid, uidOf(who));
  }
});
