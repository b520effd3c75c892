// The official e2b JS SDK in debug mode (E2B_DEBUG=true): it talks straight to
// http://localhost:49983, assumes envd version 99.99.99, sends no access token, and never
// calls the control plane. The whole file holds /tmp/envd-49983.lock (ctest: RESOURCE_LOCK).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox, AuthenticationError, SandboxError, TemplateError } from 'e2b';
import { startEnvd, lockDebugPort, DEBUG_PORT, REF, rejection } from './harness.mjs';

let lock;
let envd;

before(async () => {
  lock = await lockDebugPort();
  envd = await startEnvd({ port: DEBUG_PORT });
  process.env.E2B_DEBUG = 'true';
});

after(async () => {
  await envd?.stop();
  await lock?.release();
});

test('debug mode: create() needs no API and isRunning() is true against live envd', async () => {
  const sbx = await Sandbox.create();
  assert.equal(sbx.sandboxId, 'debug_sandbox_id');
  assert.equal(sbx.envdAccessToken, undefined);
  assert.equal(await sbx.isRunning(), true);
  const again = await Sandbox.connect('whatever-id');
  assert.equal(await again.isRunning(), true);
});

test('user header: `user` passes authentication, an unknown user is unauthenticated', async () => {
  const sbx = await Sandbox.create();
  // No user → no Authorization header (version ≥ 0.4.0): envd's default user.
  // `user` and `root` exist: whatever ListDir answers, it is not an authentication failure.
  for (const user of [undefined, 'user', 'root']) {
    try {
      await sbx.files.list('/', { user });
    } catch (e) {
      assert.ok(!(e instanceof AuthenticationError), `user ${user}: ${e}`);
      assert.doesNotMatch(e.message, /unauthenticated|invalid username/);
    }
  }
  const err = await rejection(() => sbx.files.list('/', { user: 'no-such-user-e2b' }));
  assert.ok(err instanceof AuthenticationError, `expected AuthenticationError, got ${err}`);
  assert.match(err.message, /invalid username: 'no-such-user-e2b'/);
  // The same gate on a server-streaming RPC (Process.Start): Connect streams carry the
  // error in the end-of-stream frame, which the SDK maps the same way.
  const err2 = await rejection(() =>
    sbx.commands.run('true', { user: 'no-such-user-e2b', requestTimeoutMs: 10_000, timeoutMs: 10_000 }),
  );
  assert.ok(err2 instanceof AuthenticationError, `expected AuthenticationError, got ${err2}`);
  assert.match(err2.message, /invalid username: 'no-such-user-e2b'/);
});

test('debug mode assumes envd 99.99.99: every watch feature gate passes and the call reaches envd', async () => {
  const sbx = await Sandbox.create();
  let handle;
  try {
    handle = await sbx.files.watchDir('/tmp', () => {}, {
      recursive: true,
      includeEntry: true,
      allowNetworkMounts: true,
      requestTimeoutMs: 10_000,
      timeoutMs: 10_000,
    });
  } catch (e) {
    assert.ok(!(e instanceof TemplateError), `a version gate fired in debug mode: ${e}`);
    assert.ok(e instanceof SandboxError, `expected envd's answer, got ${e}`);
  } finally {
    await handle?.stop();
  }
});

test('isRunning() after envd stops: the SDK surfaces the refused connection (only a 502 means false)', async () => {
  const sbx = await Sandbox.create();
  assert.equal(await sbx.isRunning(), true);
  const { code, signal } = await envd.stop();
  if (!REF) {
    // Ours exits 0 on SIGTERM; the reference dies of the signal.
    assert.equal(signal, null, `envd died of ${signal}`);
    assert.equal(code, 0, 'envd exits 0 on SIGTERM');
  }
  // Direct to a dead port there is no proxy to answer 502, so isRunning() rejects
  // (fetch failed / ECONNREFUSED) instead of returning false. normal.test.mjs covers
  // the `false` answer through the fake edge.
  const err = await rejection(() => sbx.isRunning({ requestTimeoutMs: 5_000 }));
  assert.match(`${err.message} ${err.cause?.code ?? ''} ${err.cause?.message ?? ''}`, /fetch failed|ECONNREFUSED|connect/i);
});
