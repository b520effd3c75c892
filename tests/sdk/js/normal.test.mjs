// The official e2b JS SDK in normal mode: the control plane is ../fake_api.mjs on loopback
// (E2B_API_URL, a dummy E2B_API_KEY), and E2B_SANDBOX_URL points the SDK's envd traffic at
// our envd on a free port. Sandbox.create() makes the fake POST /init {accessToken} to envd,
// as the orchestrator does, so everything after runs in secure (token) mode, with the
// envdVersion our binary prints for `-version`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Sandbox, AuthenticationError, SandboxError, TemplateError } from 'e2b';
import { startEnvd, startFakeApi, envdVersion, compareVersions, rejection } from './harness.mjs';

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

after(async () => {
  await api?.close();
  await envd?.stop();
});

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
  // The SDK's call passes the token gate and reaches the RPC layer.
  const err = await rejection(() => sbx.files.list('/'));
  assert.ok(!(err instanceof AuthenticationError), `SDK call with the token was refused: ${err}`);
  assert.match(err.message, /unimplemented/); // Swap for a success check once ListDir exists.

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
    assert.equal(code, 0, 'envd exits 0 on SIGTERM');
    assert.equal(await sbx.isRunning(), false);
  } finally {
    await ownApi.close();
    await own.stop();
  }
});
