// Port forwarding (contract §7.5) through the official e2b JS SDK in debug mode: a
// `python3 -m http.server --bind 127.0.0.1 <port>` started with sandbox.commands becomes
// reachable on the external address, and goes away once killed. The external address is
// 127.0.0.2 (on the loopback interface) and --forward-ports limits forwarding to this file's ports;
// scans every 50 ms, every wait has a 10 s deadline. Holds /tmp/envd-49983.lock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { lockDebugPort, startEnvd, DEBUG_PORT, waitFor } from './harness.mjs';

const EXTERNAL = '127.0.0.2';
const T = { timeout: 60_000 };
let lock;
let envd;
let sbx;
let port;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** "open" or "refused" for host:port. */
function probe(host, p) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: p });
    s.once('connect', () => {
      s.destroy();
      resolve('open');
    });
    s.once('error', (e) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
  });
}

before(async () => {
  port = await freePort();
  lock = await lockDebugPort();
  envd = await startEnvd({
    port: DEBUG_PORT,
    args: ['-no-cgroups', '--forward-address', EXTERNAL, '--forward-scan-ms', '50', '--forward-ports', String(port)],
  });
  process.env.E2B_DEBUG = 'true';
  const { Sandbox } = await import('e2b');
  sbx = await Sandbox.create();
});

after(async () => {
  const running = envd?.running;
  await envd?.stop();
  await lock?.release();
  if (running === false) throw new Error(`envd died during the tests:\n${envd?.stderr()}`);
});

test('a loopback-only http.server started through the SDK is reachable on the external address, then gone after kill', T, async () => {
  const dir = `/tmp/envd-sdk-forward-${process.pid}`;
  await sbx.files.write(`${dir}/index.txt`, 'served through the forward\n');
  assert.equal(await probe(EXTERNAL, port), 'refused');
  const h = await sbx.commands.run(`exec python3 -m http.server --bind 127.0.0.1 ${port}`, { background: true, cwd: dir });
  let killed = false;
  try {
    const body = await waitFor(
      async () => {
        try {
          const r = await fetch(`http://${EXTERNAL}:${port}/index.txt`, { signal: AbortSignal.timeout(2000) });
          return r.status === 200 && (await r.text());
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, intervalMs: 25, what: `GET http://${EXTERNAL}:${port}/index.txt` },
    );
    assert.equal(body, 'served through the forward\n');
    // The service itself listens on loopback only: without the forward nothing is on 127.0.0.2.
    assert.match(envd.stderr(), new RegExp(`forwarding 127\\.0\\.0\\.2:${port} to 127\\.0\\.0\\.1:${port}`));

    assert.equal(await h.kill(), true);
    killed = true;
    await waitFor(async () => (await probe(EXTERNAL, port)) === 'refused', {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: 'the forward to close after the kill',
    });
  } finally {
    if (!killed) await h.kill().catch(() => {});
    await sbx.files.remove(dir);
  }
});
