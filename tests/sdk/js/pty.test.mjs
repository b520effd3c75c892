// The official e2b JS SDK's `sandbox.pty.*` against our envd's process.Process PTYs, in debug
// mode (E2B_DEBUG=true, http://localhost:49983). The file holds /tmp/envd-49983.lock (ctest:
// RESOURCE_LOCK port49983). Contract §4.2, §4.9, §4.11; issue 4 (Tests).
//
// The shell echoes what it is sent, so every expected answer is computed by the shell
// (`$((40+2))`, `$TERM`) and cannot be mistaken for the echo of the input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox, CommandExitError, NotFoundError, TimeoutError, SandboxError } from 'e2b';
import { useDebugSandbox, rejection, waitFor } from './harness.mjs';

const T = { timeout: 60_000 };
let envd;
let sbx;
useDebugSandbox((e, s) => {
  envd = e;
  sbx = s;
});

/** A terminal transcript fed by onData; `mark()` + `waitSince(mark, re)` look only at newer output. */
function terminal() {
  const dec = new TextDecoder();
  const t = {
    text: '',
    chunks: 0,
    onData: (d) => {
      assert.ok(d instanceof Uint8Array, 'pty data is bytes');
      t.chunks++;
      t.text += dec.decode(d, { stream: true });
    },
    mark: () => t.text.length,
    waitSince: (mark, re, what = String(re)) =>
      waitFor(() => t.text.slice(mark).match(re), {
        timeoutMs: 10_000,
        what: () => `${what} in the terminal; got ${JSON.stringify(t.text.slice(mark))}`,
      }),
  };
  return t;
}

const listed = async (pid) => (await sbx.commands.list()).find((p) => p.pid === pid);
const enc = (s) => new TextEncoder().encode(s);

test('pty.create: an interactive login shell; sendInput runs a command and onData sees its output', T, async () => {
  const term = terminal();
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: term.onData, timeoutMs: 30_000 });
  try {
    assert.ok(Number.isInteger(h.pid) && h.pid > 1);
    const m = term.mark();
    await sbx.pty.sendInput(h.pid, enc('echo hi-$((40+2))\n'));
    await term.waitSince(m, /hi-42/);
    // The SDK's PTY environment defaults, and a real terminal on stdin/stdout/stderr.
    const m2 = term.mark();
    await sbx.pty.sendInput(h.pid, enc('echo "[$TERM|$LANG|$LC_ALL]"; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty-$((1+2)); echo err-$((2+2)) >&2\n'));
    await term.waitSince(m2, /\[xterm-256color\|C\.UTF-8\|C\.UTF-8\][\s\S]*tty-3[\s\S]*err-4/);
    // Listed as a process: bash -i -l with the SDK's envs.
    const info = await listed(h.pid);
    assert.equal(info?.cmd, '/bin/bash');
    assert.deepEqual(info?.args, ['-i', '-l']);
    assert.equal(info?.envs.TERM, 'xterm-256color');
  } finally {
    await sbx.pty.kill(h.pid);
  }
});

test('pty: initial size from create, resize → stty size shows the new size (SIGWINCH reaches the shell)', T, async () => {
  const term = terminal();
  const h = await sbx.pty.create({ cols: 91, rows: 27, onData: term.onData, timeoutMs: 30_000 });
  try {
    let m = term.mark();
    await sbx.pty.sendInput(h.pid, enc('stty size; echo "cols=$COLUMNS"\n'));
    await term.waitSince(m, /27 91[\s\S]*cols=91/);
    await sbx.pty.resize(h.pid, { cols: 123, rows: 45 });
    m = term.mark();
    // $COLUMNS is updated by bash on SIGWINCH (checkwinsize), stty reads the kernel's size.
    await sbx.pty.sendInput(h.pid, enc('stty size; echo "cols=$COLUMNS"\n'));
    await term.waitSince(m, /45 123[\s\S]*cols=123/);
  } finally {
    await sbx.pty.kill(h.pid);
  }
});

test('pty.kill: true, the session ends with -1 / signal: killed and leaves the list; then false', T, async () => {
  const term = terminal();
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: term.onData, timeoutMs: 30_000 });
  assert.ok(await listed(h.pid));
  // Killed only once the shell is interactive (its profile is done: see commands.test.mjs).
  await sbx.pty.sendInput(h.pid, enc('echo ready-$((1+1))\n'));
  await term.waitSince(0, /ready-2/);
  assert.equal(await sbx.pty.kill(h.pid), true);
  const e = await rejection(() => h.wait());
  assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
  assert.equal(e.exitCode, -1);
  assert.equal(e.error, 'signal: killed');
  assert.equal(await listed(h.pid), undefined);
  assert.equal(await sbx.pty.kill(h.pid), false);
  assert.equal(await h.kill(), false);
});

test('pty: `exit 3` typed in the shell ends it with exit code 3', T, async () => {
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: () => {}, timeoutMs: 30_000 });
  await sbx.pty.sendInput(h.pid, enc('exit 3\n'));
  const e = await rejection(() => h.wait());
  assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
  assert.equal(e.exitCode, 3);
  assert.equal(e.error, 'exit status 3');
});

test('pty.connect: a second client attaches by pid and drives the same shell; both see the output', T, async () => {
  const a = terminal();
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: a.onData, timeoutMs: 30_000 });
  try {
    let m = a.mark();
    await sbx.pty.sendInput(h.pid, enc('X=$((6*7))\necho "x=$X"\n'));
    await a.waitSince(m, /x=42/);

    const b = terminal();
    const c = await sbx.pty.connect(h.pid, { onData: b.onData, timeoutMs: 30_000 });
    assert.equal(c.pid, h.pid);
    m = a.mark();
    await sbx.pty.sendInput(h.pid, enc('echo "again-$((X+1))"\n'));
    await b.waitSince(0, /again-43/, 'output on the connected handle (same shell state)');
    await a.waitSince(m, /again-43/, 'output on the creating handle');
    assert.doesNotMatch(b.text, /x=42/, 'no replay of output from before the attach');

    // The creator goes away; the shell lives on for the connected client.
    await h.disconnect();
    await sbx.pty.sendInput(h.pid, enc('echo "still-$((X*2))"\n'));
    await b.waitSince(0, /still-84/);
    await sbx.pty.sendInput(h.pid, enc('exit 5\n'));
    const e = await rejection(() => c.wait());
    assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
    assert.equal(e.exitCode, 5);
  } finally {
    await sbx.pty.kill(h.pid);
  }
  const e2 = await rejection(() => sbx.pty.connect(99_999_999));
  assert.ok(e2 instanceof NotFoundError, `expected NotFoundError, got ${e2}`);
});

test('pty: user and cwd; closeStdin is refused for a PTY (send Ctrl-D instead), Ctrl-D ends the shell', T, async () => {
  const term = terminal();
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: term.onData, user: 'user', cwd: '/tmp', timeoutMs: 30_000 });
  const m = term.mark();
  await sbx.pty.sendInput(h.pid, enc('echo "[$(whoami)|$HOME|$(pwd)]"\n'));
  // ... and the next prompt: readline owns the terminal again, so Ctrl-D is read as EOF (sent
  // earlier, the canonical-mode EOF can be lost when readline switches the tty to raw mode).
  await term.waitSince(m, /\[user\|\/home\/user\|\/tmp\][\s\S]*\$ /);

  const e = await rejection(() => sbx.commands.closeStdin(h.pid));
  assert.ok(e instanceof SandboxError, `expected SandboxError, got ${e}`);
  assert.match(e.message, /cannot close stdin for PTY process/);
  // Ctrl-D on an empty line: bash -i exits 0.
  await sbx.pty.sendInput(h.pid, new Uint8Array([4]));
  const r = await h.wait();
  assert.equal(r.exitCode, 0);
});

test('pty: timeoutMs limits the session: wait() raises TimeoutError and the shell is gone', T, async () => {
  // As `user`: envd times the kill, and root's profile must not be interrupted (commands.test.mjs).
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: () => {}, user: 'user', timeoutMs: 1_000 });
  const t0 = Date.now();
  const e = await rejection(() => h.wait());
  assert.ok(e instanceof TimeoutError, `expected TimeoutError, got ${e}`);
  assert.ok(Date.now() - t0 < 30_000);  // vs never (a shell waits for input)
  await waitFor(async () => !(await listed(h.pid)), { timeoutMs: 15_000, what: 'the PTY to leave the list' });
});
