// Test harness for the official e2b JS SDK against our envd: starts the built daemon
// ($ENVD_BIN) as root with -isnotfc, makes sure the test user `user` exists, holds the
// machine-wide lock for port 49983 while a debug-mode daemon runs there, and stops it all.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { before, after } from 'node:test';
export { startFakeApi } from '../fake_api.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEBUG_PORT = 49983;
export const PORT_LOCK = '/tmp/envd-49983.lock';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

// Environment leaking in from the caller would silently redirect the SDK.
for (const k of Object.keys(process.env)) if (k.startsWith('E2B_')) delete process.env[k];

/**
 * ENVD_REF=<path> (or ENVD_REF=1 with ENVD_BIN) runs E2B's Go envd, the reference, instead of
 * ours, so that the same tests prove themselves against it. It takes Go flags
 * (`-isnotfc -port N`, plus `-no-cgroups` here), prints no `listening` line and has no h2c:
 * the harness picks the free port itself and waits for GET /health.
 */
export const REF = process.env.ENVD_REF && process.env.ENVD_REF !== '0' ? process.env.ENVD_REF : '';

export function envdBin() {
  const bin = (REF && REF !== '1' ? REF : process.env.ENVD_BIN) || path.resolve(here, '../../../build/envd/envd');
  if (!existsSync(bin)) throw new Error(`envd binary not found at ${bin}: build it or set ENVD_BIN`);
  return bin;
}

/** `$ENVD_BIN -version`, trimmed: what the template builder stores as envdVersion. */
export function envdVersion() {
  return execFileSync(envdBin(), ['-version'], { encoding: 'utf8' }).trim();
}

/** The test user of E2B templates (`useradd -m -s /bin/bash user`), created once. */
export function ensureTestUser() {
  if (process.getuid() !== 0) throw new Error('the SDK harness must run as root (envd runs as root and creates users)');
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      execFileSync('id', ['-u', 'user'], { stdio: 'ignore' });
      return;
    } catch {}
    try {
      execFileSync('useradd', ['-m', '-s', '/bin/bash', 'user'], { stdio: 'pipe' });
      return;
    } catch (e) {
      // 9: created concurrently by another test process; 10: /etc/passwd busy.
      if (e.status !== 9 && e.status !== 10) throw e;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  execFileSync('id', ['-u', 'user'], { stdio: 'ignore' });
}

/**
 * Takes the exclusive lock on /tmp/envd-49983.lock through flock(1): the lock is held by a
 * `cat` child that lives until we close its stdin (or until this process dies, which closes it).
 */
export async function lockDebugPort({ timeoutSec = 240 } = {}) {
  const child = spawn('flock', ['-w', String(timeoutSec), PORT_LOCK, '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('locked')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`flock ${PORT_LOCK} failed (exit ${code})`)));
    child.once('error', reject);
  });
  return {
    release: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', resolve);
        child.stdin.end();
      }),
  };
}

/**
 * Starts envd as root with -isnotfc on `port` (0 = a free port, parsed from the
 * "listening on 0.0.0.0:<port>" log line). Returns { port, url, stop(), stderr() }.
 */
export async function startEnvd({ port = 0, args = [] } = {}) {
  ensureTestUser();
  if (REF) return startRef(port);
  const child = spawn(envdBin(), ['-isnotfc', '-port', String(port), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    log += d;
    if (log.length > 256 * 1024) log = log.slice(-128 * 1024);
  });
  const actualPort = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`envd did not start within ${START_TIMEOUT_MS} ms:\n${log}`)), START_TIMEOUT_MS);
    const onData = () => {
      const m = log.match(/listening on [^"\s]*:(\d+)/);
      if (m) {
        clearTimeout(timer);
        child.stderr.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stderr.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`envd exited during startup (code ${code}, signal ${sig}):\n${log}`));
    });
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return daemonHandle(child, actualPort, () => log, exited);
}

/** What startEnvd returns for a started daemon (ours or the reference). */
function daemonHandle(child, port, stderr, exited) {
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stderr,
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The reference envd (ENVD_REF): our flags mapped to its own; ready once /health answers. */
async function startRef(port) {
  const actualPort = port || (await freePort());
  const child = spawn(envdBin(), ['-isnotfc', '-port', String(actualPort), '-no-cgroups'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  for (const s of [child.stdout, child.stderr]) {
    s.setEncoding('utf8');
    s.on('data', (d) => {
      log += d;
      if (log.length > 256 * 1024) log = log.slice(-128 * 1024);
    });
  }
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${actualPort}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`reference envd exited during startup (code ${child.exitCode}):\n${log}`);
    }
    try {
      const r = await fetch(url + '/health', { signal: AbortSignal.timeout(1000) });
      if (r.status === 204) break;
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`reference envd did not answer /health within ${START_TIMEOUT_MS} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return daemonHandle(child, actualPort, () => log, exited);
}

/** Semver-ish comparison of dotted numeric versions (as the SDKs gate on them). */
export function compareVersions(a, b) {
  const pa = a.split(/[.+-]/).map(Number);
  const pb = b.split(/[.+-]/).map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) < (pb[i] || 0) ? -1 : 1;
  return 0;
}

/** Runs `fn` and returns what it threw (fails if it did not throw). */
export async function rejection(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail, it succeeded');
}

/**
 * Polls `fn` until it returns a truthy value (returned), or fails after `timeoutMs`. `what` (a
 * string, or a function evaluated at the failure) describes the condition in the error.
 */
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * process.Process/Start over plain Connect JSON (fetch), for what the SDK cannot ask for (a tag).
 * Returns the pid from the start event and drops the stream: the process outlives its client.
 * No Connect-Timeout-Ms, so no lifetime limit: the caller kills the process.
 */
export async function startRaw(baseUrl, { cmd, args = [], envs, cwd, tag, stdin = false }) {
  const body = Buffer.from(JSON.stringify({ process: { cmd, args, envs, cwd }, tag, stdin }));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 10_000);
  try {
    const res = await fetch(`${baseUrl}/process.Process/Start`, {
      method: 'POST',
      headers: { 'content-type': 'application/connect+json', 'connect-protocol-version': '1' },
      body: frame,
      signal: ac.signal,
    });
    if (res.status !== 200) throw new Error(`Start: HTTP ${res.status} ${await res.text()}`);
    let buf = Buffer.alloc(0);
    for await (const chunk of res.body) {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const msg = JSON.parse(buf.subarray(5, 5 + buf.readUInt32BE(1)).toString('utf8'));
        const pid = msg.event?.start?.pid;
        if (buf[0] !== 0 || !pid) throw new Error(`Start: expected a start event first, got ${JSON.stringify(msg)}`);
        return pid;
      }
    }
    throw new Error('Start: stream ended before the start event');
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

/**
 * Registers node:test before/after hooks for a file of debug-mode SDK tests: takes the :49983
 * lock, starts envd there, creates a Sandbox (E2B_DEBUG=true) and hands both to `ready`; after
 * the file, stops envd, releases the lock and fails if envd died meanwhile.
 */
export function useDebugSandbox(ready) {
  let lock;
  let envd;
  before(async () => {
    lock = await lockDebugPort();
    envd = await startEnvd({ port: DEBUG_PORT });
    process.env.E2B_DEBUG = 'true';
    const { Sandbox } = await import('e2b');
    ready(envd, await Sandbox.create());
  });
  after(async () => {
    const running = envd?.running;
    await envd?.stop();
    await lock?.release();
    if (running === false) throw new Error(`envd died during the tests:\n${envd?.stderr()}`);
  });
}
