// The official e2b JS SDK's `sandbox.commands.*` against our envd's process.Process, in debug
// mode (E2B_DEBUG=true, http://localhost:49983, envd assumed 99.99.99). The file holds
// /tmp/envd-49983.lock (ctest: RESOURCE_LOCK port49983). Contract §3, §4; issue 4 (Tests).
//
// Marker: each long-running command carries a distinct number (`sleep 30.1`, …) so that leftovers
// are found with `pgrep -f '^slee[p] 30.1'` (anchored: the sleep itself, not the shell that started
// it; the bracket keeps pgrep's own shell from matching).
//
// Killing a login shell: the SDK runs every command as `bash -l -c`, and a root login shell on a
// developer machine may run profile code that takes a lock file (pyenv's `rehash` in ~/.bashrc).
// SIGKILLing the group while the profile runs leaves that lock behind, and every later root login
// shell waits 60 s for it. So a command is killed only once it printed `ready` (its profile is
// done), and commands whose kill is timed by envd (timeouts) run as `user`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Sandbox, CommandExitError, InvalidArgumentError, NotFoundError, TimeoutError, SandboxError } from 'e2b';
import { useDebugSandbox, rejection, waitFor, startRaw } from './harness.mjs';

const T = { timeout: 60_000 };
let envd;
let sbx;
useDebugSandbox((e, s) => {
  envd = e;
  sbx = s;
});

const userUid = () => execFileSync('id', ['-u', 'user'], { encoding: 'utf8' }).trim();
/** Pids of live processes whose command line matches the (bracketed) pattern. */
async function pgrep(pattern) {
  const r = await sbx.commands.run(`pgrep -f '^${pattern}' || true`, { timeoutMs: 10_000 });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}
const listed = async (pid) => (await sbx.commands.list()).find((p) => p.pid === pid);

// ---------------------------------------------------------------------------------------------
// foreground

test('run: stdout and stderr separated, callbacks receive the data, exit code 0', T, async () => {
  const out = [];
  const err = [];
  const r = await sbx.commands.run('echo out-1; echo err-1 >&2; printf "out-%s\\n" 2', {
    onStdout: (d) => out.push(d),
    onStderr: (d) => err.push(d),
  });
  assert.equal(r.exitCode, 0);
  assert.equal(r.error, undefined);
  assert.equal(r.stdout, 'out-1\nout-2\n');
  assert.equal(r.stderr, 'err-1\n');
  assert.equal(out.join(''), 'out-1\nout-2\n');
  assert.equal(err.join(''), 'err-1\n');
});

test('run: 1 MiB of stdout arrives whole, through the callback and in the result', T, async () => {
  let n = 0;
  const r = await sbx.commands.run("head -c 1048576 /dev/zero | tr '\\0' a", { onStdout: (d) => (n += d.length) });
  assert.equal(n, 1 << 20);
  assert.equal(r.stdout.length, 1 << 20);
  assert.match(r.stdout, /^a+$/);
});

test('run: non-zero exit → CommandExitError with exitCode, stdout, stderr and error', T, async () => {
  const e = await rejection(() => sbx.commands.run('echo partial; echo oops >&2; exit 3'));
  assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
  assert.equal(e.exitCode, 3);
  assert.equal(e.stdout, 'partial\n');
  assert.equal(e.stderr, 'oops\n');
  assert.equal(e.error, 'exit status 3');
  assert.equal(e.message, 'exit status 3');
});

test('run: a command that does not exist → CommandExitError 127, bash says so on stderr', T, async () => {
  const e = await rejection(() => sbx.commands.run('no-such-command-e2b --flag'));
  assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
  assert.equal(e.exitCode, 127);
  assert.match(e.stderr, /no-such-command-e2b: command not found/);
  assert.equal(e.error, 'exit status 127');
});

test('run: stdin defaults to /dev/null (cat ends at once with no output)', T, async () => {
  const t0 = Date.now();
  // A cat reading anything else would wait for the 45 s timeout (TimeoutError).
  const r = await sbx.commands.run('cat; echo "cat=$?"', { timeoutMs: 45_000 });
  assert.equal(r.stdout, 'cat=0\n');
  assert.ok(Date.now() - t0 < 30_000);
});

test('run: envs are per command, override nothing else, and E2B_SANDBOX is false with -isnotfc', T, async () => {
  const r = await sbx.commands.run('echo "$FOO|$BAR|$E2B_SANDBOX|$HOME"', { envs: { FOO: 'foo', BAR: 'b a r=1' } });
  assert.equal(r.stdout, 'foo|b a r=1|false|/root\n');
  const again = await sbx.commands.run('echo "${FOO-unset}|${BAR-unset}"');
  assert.equal(again.stdout, 'unset|unset\n');
  // Request envs come last, so they win over envd's own (HOME from passwd).
  const home = await sbx.commands.run('echo "$HOME"', { envs: { HOME: '/tmp' } });
  assert.equal(home.stdout, '/tmp\n');
});

test('run: cwd absolute, relative to HOME, ~, default HOME; a missing cwd → InvalidArgumentError', T, async () => {
  assert.equal((await sbx.commands.run('pwd', { cwd: '/tmp' })).stdout, '/tmp\n');
  assert.equal((await sbx.commands.run('pwd')).stdout, '/root\n');
  assert.equal((await sbx.commands.run('pwd', { user: 'user' })).stdout, '/home/user\n');
  await sbx.commands.run('mkdir -p e2b-rel-cwd', { user: 'user' });
  assert.equal((await sbx.commands.run('pwd', { user: 'user', cwd: 'e2b-rel-cwd' })).stdout, '/home/user/e2b-rel-cwd\n');
  assert.equal((await sbx.commands.run('pwd', { user: 'user', cwd: '~/e2b-rel-cwd' })).stdout, '/home/user/e2b-rel-cwd\n');

  const e = await rejection(() => sbx.commands.run('echo never', { cwd: '/nonexistent-e2b-cwd' }));
  assert.ok(e instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${e}`);
  assert.match(e.message, /cwd '\/nonexistent-e2b-cwd' does not exist/);
  // Nothing was started for it.
  assert.equal((await sbx.commands.list()).filter((p) => p.args.includes('echo never')).length, 0);
});

test('run: user root vs user: identity, HOME/USER/LOGNAME, owner of created files', T, async () => {
  const script = 'whoami; id -u; echo "$HOME|$USER|$LOGNAME"; f=/tmp/e2b-owner-$(id -u); rm -f $f; touch $f; stat -c %U $f';
  const root = await sbx.commands.run(script, { user: 'root' });
  assert.equal(root.stdout, 'root\n0\n/root|root|root\nroot\n');
  const user = await sbx.commands.run(script, { user: 'user' });
  assert.equal(user.stdout, `user\n${userUid()}\n/home/user|user|user\nuser\n`);
  // No user given: envd's default user, root.
  const dflt = await sbx.commands.run('whoami');
  assert.equal(dflt.stdout, 'root\n');
});

// ---------------------------------------------------------------------------------------------
// background

test('background: run returns a handle at once; wait() collects the output and the exit code', T, async () => {
  const out = [];
  const t0 = Date.now();
  const h = await sbx.commands.run('read x; echo "got $x"', { background: true, stdin: true, onStdout: (d) => out.push(d) });
  assert.ok(Date.now() - t0 < 30_000);  // vs never (the command waits for its stdin)
  assert.ok(Number.isInteger(h.pid) && h.pid > 1, `pid ${h.pid}`);
  assert.equal(h.exitCode, undefined, 'still running');
  await h.sendStdin('go\n');
  const r = await h.wait();
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, 'got go\n');
  assert.equal(out.join(''), 'got go\n');
  assert.equal(h.exitCode, 0);
});

test('background: a failing command → wait() throws CommandExitError', T, async () => {
  const h = await sbx.commands.run('echo bad >&2; exit 7', { background: true });
  const e = await rejection(() => h.wait());
  assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
  assert.equal(e.exitCode, 7);
  assert.equal(e.stderr, 'bad\n');
});

test('list: shows running commands with pid, cmd, args, envs, cwd, and a tag when one was given', T, async () => {
  const out = [];
  const h = await sbx.commands.run('echo ready; sleep 30.1', {
    background: true,
    envs: { LISTED: 'yes' },
    cwd: '/tmp',
    timeoutMs: 30_000,
    onStdout: (d) => out.push(d),
  });
  const taggedPid = await startRaw(envd.url, { cmd: '/bin/sleep', args: ['30.2'], tag: 'e2b-sdk-tag' });
  try {
    const procs = await sbx.commands.list();
    const mine = procs.find((p) => p.pid === h.pid);
    assert.deepEqual(mine, { pid: h.pid, cmd: '/bin/bash', args: ['-l', '-c', 'echo ready; sleep 30.1'], envs: { LISTED: 'yes' }, cwd: '/tmp' });
    const tagged = procs.find((p) => p.pid === taggedPid);
    assert.deepEqual(tagged, { pid: taggedPid, tag: 'e2b-sdk-tag', cmd: '/bin/sleep', args: ['30.2'], envs: {} });
  } finally {
    await waitFor(() => out.join('') === 'ready\n', { what: () => `the command to be past its profile (got ${JSON.stringify(out.join(''))})` });
    assert.equal(await h.kill(), true);
    assert.equal(await sbx.commands.kill(taggedPid), true);
  }
  await rejection(() => h.wait());
  await waitFor(async () => !(await listed(h.pid)) && !(await listed(taggedPid)), { timeoutMs: 15_000, what: 'killed processes to leave the list' });
});

test('connect: attach by pid, receive only later output, then the end; a just-ended pid is served its end', T, async () => {
  const first = [];
  const h = await sbx.commands.run('while read l; do echo "got $l"; done; exit 4', {
    background: true,
    stdin: true,
    onStdout: (d) => first.push(d),
  });
  await h.sendStdin('one\n');
  await waitFor(() => first.join('') === 'got one\n', { what: () => `first output (got ${JSON.stringify(first.join(''))})` });
  await h.disconnect();

  const second = [];
  const c = await sbx.commands.connect(h.pid, { onStdout: (d) => second.push(d) });
  assert.equal(c.pid, h.pid);
  await sbx.commands.sendStdin(h.pid, 'two\n');
  await waitFor(() => second.join('') === 'got two\n', { what: () => `output on the connected handle (got ${JSON.stringify(second.join(''))})` });
  await c.closeStdin();
  const e = await rejection(() => c.wait());
  assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
  assert.equal(e.exitCode, 4);
  assert.equal(e.stdout, 'got two\n', 'no replay of output from before the attach');
  assert.equal(first.join(''), 'got one\n', 'the disconnected handle got nothing more');

  // Ended moments ago: envd still serves start + the retained end (30 s).
  const late = await sbx.commands.connect(h.pid);
  const e2 = await rejection(() => late.wait());
  assert.ok(e2 instanceof CommandExitError, `expected CommandExitError, got ${e2}`);
  assert.equal(e2.exitCode, 4);
  assert.equal(e2.stdout, '');

  // A pid that never existed.
  const e3 = await rejection(() => sbx.commands.connect(99_999_999));
  assert.ok(e3 instanceof NotFoundError, `expected NotFoundError, got ${e3}`);
  assert.match(e3.message, /process with pid 99999999 not found/);
});

test('kill: true and the command ends with signal: killed (whole group); then false for it and for unknown pids', T, async () => {
  const h = await sbx.commands.run('sleep 30.3 & sleep 30.4', { background: true });
  await waitFor(async () => (await pgrep('slee[p] 30.3')).length === 1, { what: 'the background child' });
  assert.ok(await listed(h.pid));
  assert.equal(await h.kill(), true);
  const e = await rejection(() => h.wait());
  assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
  assert.equal(e.exitCode, -1);
  assert.equal(e.error, 'signal: killed');
  assert.equal(await listed(h.pid), undefined);
  await waitFor(async () => (await pgrep('slee[p] 30.[34]')).length === 0, { timeoutMs: 15_000, what: 'the group to be gone' });
  assert.equal(await sbx.commands.kill(h.pid), false);
  assert.equal(await sbx.commands.kill(99_999_999), false);
});

test('stdin: sendStdin + closeStdin with stdin: true (cat echoes, ends on EOF)', T, async () => {
  const out = [];
  const h = await sbx.commands.run('cat; echo "eof after cat"', { background: true, stdin: true, onStdout: (d) => out.push(d) });
  await h.sendStdin('hello\n');
  await waitFor(() => out.join('') === 'hello\n', { what: () => `cat to echo the first line (got ${JSON.stringify(out.join(''))})` });
  await sbx.commands.sendStdin(h.pid, new TextEncoder().encode('wörld\n'));
  await h.sendStdin('no newline');
  await h.closeStdin();
  const r = await h.wait();
  assert.equal(r.stdout, 'hello\nwörld\nno newlineeof after cat\n');
  // It is gone: stdin of an ended pid is not found.
  const e = await rejection(() => sbx.commands.sendStdin(h.pid, 'late\n'));
  assert.ok(e instanceof NotFoundError, `expected NotFoundError, got ${e}`);
});

test('stdin: sendStdin to a command started without stdin is refused; closeStdin is a no-op', T, async () => {
  const out = [];
  const h = await sbx.commands.run('echo ready; sleep 30.5', { background: true, onStdout: (d) => out.push(d) });
  try {
    const e = await rejection(() => h.sendStdin('x\n'));
    assert.ok(e instanceof SandboxError, `expected SandboxError, got ${e}`);
    assert.match(e.message, /stdin not enabled or closed/);
    await h.closeStdin();
    assert.ok(await listed(h.pid), 'still running');
  } finally {
    await waitFor(() => out.join('') === 'ready\n', { what: () => `the command to be past its profile (got ${JSON.stringify(out.join(''))})` });
    assert.equal(await h.kill(), true);
  }
});

// ---------------------------------------------------------------------------------------------
// timeouts and background children

test('timeoutMs: the command is killed, the SDK raises TimeoutError, nothing is left', T, async () => {
  const t0 = Date.now();
  const e = await rejection(() => sbx.commands.run('sleep 30.6 & sleep 30.7', { user: 'user', timeoutMs: 1_000 }));
  const took = Date.now() - t0;
  assert.ok(e instanceof TimeoutError, `expected TimeoutError, got ${e}`);
  assert.match(e.message, /deadline_exceeded/);
  assert.ok(took >= 900 && took < 20_000, `took ${took} ms`);  // vs the 30 s sleeps
  await waitFor(async () => !(await sbx.commands.list()).some((p) => p.args.includes('sleep 30.6 & sleep 30.7')), {
    timeoutMs: 15_000,
    what: 'the timed-out command to leave the list',
  });
  await waitFor(async () => (await pgrep('slee[p] 30.[67]')).length === 0, { timeoutMs: 15_000, what: 'its group to be gone' });
});

test('timeoutMs on a background command: wait() raises TimeoutError and the pid is gone', T, async () => {
  const h = await sbx.commands.run('sleep 30.8', { user: 'user', background: true, timeoutMs: 1_000 });
  const e = await rejection(() => h.wait());
  assert.ok(e instanceof TimeoutError, `expected TimeoutError, got ${e}`);
  await waitFor(async () => !(await listed(h.pid)), { timeoutMs: 15_000, what: 'the pid to leave the list' });
  assert.equal(await sbx.commands.kill(h.pid), false);
});

test('connect timeoutMs bounds only the attach stream: TimeoutError on it, the command lives on', T, async () => {
  const out = [];
  const h = await sbx.commands.run('echo ready; sleep 31.2', { background: true, timeoutMs: 30_000, onStdout: (d) => out.push(d) });
  try {
    await waitFor(() => out.join('') === 'ready\n', { what: () => `ready (got ${JSON.stringify(out.join(''))})` });
    const c = await sbx.commands.connect(h.pid, { timeoutMs: 1_000 });
    const e = await rejection(() => c.wait());
    assert.ok(e instanceof TimeoutError, `expected TimeoutError, got ${e}`);
    assert.ok(await listed(h.pid), 'the command outlives the attach timeout');
    assert.equal(h.exitCode, undefined, 'the starting stream is still open');
  } finally {
    assert.equal(await h.kill(), true);
  }
  const e = await rejection(() => h.wait());
  assert.equal(e.exitCode, -1);
});

test('a command whose child keeps running in the background ends promptly; the child lives on', T, async () => {
  const t0 = Date.now();
  const r = await sbx.commands.run('sleep 30.9 & echo started', { timeoutMs: 45_000 });
  const took = Date.now() - t0;
  assert.equal(r.stdout, 'started\n');
  assert.ok(took < 20_000, `end waited for the background child: ${took} ms`);  // vs its 30.9 s
  const bg = await pgrep('slee[p] 30.9');
  assert.equal(bg.length, 1, 'the background child still runs');
  await sbx.commands.run('pkill -f "slee[p] 30.9" || true');

  const h = await sbx.commands.run('sleep 31.1 >/dev/null 2>&1 & echo started-bg', { background: true, timeoutMs: 20_000 });
  const t1 = Date.now();
  assert.equal((await h.wait()).stdout, 'started-bg\n');
  assert.ok(Date.now() - t1 < 20_000);  // vs its 31.1 s
  await sbx.commands.run('pkill -f "slee[p] 31.1" || true');
});
