// The official e2b JS SDK's `sandbox.git.*` helpers (they run git through `commands.run`, as
// `bash -l -c`) together with `sandbox.files.*` writes and reads, in debug mode (E2B_DEBUG=true,
// http://localhost:49983). The file holds /tmp/envd-49983.lock (ctest: RESOURCE_LOCK port49983).
// Issue 8 (Tests, git item): init, clone from a local bare repo (path and file://), add, commit,
// status, branches, reset, restore, pull/push to a local remote — as `root` and as `user`.
//
// Needs the E2B-template test machine (tests/sdk/install.sh): `git` on the PATH of every user.
// Identity is configured per repository (scope `local`): root's global ~/.gitconfig on a
// developer machine is left alone; `user`'s global config is the test user's own.
// The tests of one user build on each other (one repository history), in file order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { CommandExitError, GitUpstreamError } from 'e2b';
import { useDebugSandbox, rejection } from './harness.mjs';

const T = { timeout: 90_000 };
let sbx;
useDebugSandbox((_e, s) => {
  sbx = s;
});

const tag = crypto.randomBytes(4).toString('hex');
const base = (who) => (who === 'root' ? `/tmp/sdk-js-git-${tag}` : `/home/user/sdk-js-git-${tag}`);
after(() => {
  for (const who of ['root', 'user']) fs.rmSync(base(who), { recursive: true, force: true });
});

function assertOwnedBy(p, who) {
  const uid = Number(execFileSync('id', ['-u', who], { encoding: 'utf8' }).trim());
  assert.equal(fs.statSync(p).uid, uid, `${p} owned by ${who}`);
}
/** Runs git on the host (as root) to look at a repository without going through the SDK. */
const hostGit = (repo, ...args) =>
  execFileSync('git', ['-c', `safe.directory=*`, '-C', repo, ...args], { encoding: 'utf8' }).trim();

test('template environment: git, python and passwordless sudo for `user`', T, async () => {
  for (const who of ['root', 'user']) {
    const r = await sbx.commands.run('git --version && python --version && command -v sudo', { user: who });
    assert.match(r.stdout, /^git version \d/m, who);
    assert.match(r.stdout + r.stderr, /Python 3\./, who);
  }
  const s = await sbx.commands.run('sudo -n whoami', { user: 'user' });
  assert.equal(s.stdout.trim(), 'root');
});

for (const who of ['root', 'user']) {
  const opts = { user: who, timeoutMs: 30_000 };
  const dir = base(who);
  const remote = `${dir}/remote.git`;
  const work = `${dir}/work`;
  const clone = `${dir}/clone`;
  const ident = (path) => sbx.git.configureUser(`Test ${who}`, `${who}@example.com`, { ...opts, scope: 'local', path });

  test(`${who}: init (bare remote and work tree), files.write, status, add, commit`, T, async () => {
    await sbx.git.init(remote, { ...opts, bare: true, initialBranch: 'main' });
    assert.ok(fs.existsSync(`${remote}/HEAD`));
    assertOwnedBy(remote, who);
    await sbx.git.init(work, { ...opts, initialBranch: 'main' });
    assertOwnedBy(`${work}/.git`, who);
    await ident(work);
    assert.equal(await sbx.git.getConfig('user.email', { ...opts, scope: 'local', path: work }), `${who}@example.com`);

    await sbx.files.write(
      [
        { path: `${work}/README.md`, data: '# demo\n' },
        { path: `${work}/src/app.py`, data: 'print("hi")\n' },
      ],
      { user: who },
    );
    let st = await sbx.git.status(work, opts);
    assert.equal(st.hasUntracked, true);
    assert.deepEqual(st.fileStatus.map((f) => [f.name, f.status, f.staged]).sort(), [
      ['README.md', 'untracked', false],
      ['src/', 'untracked', false],
    ]);

    await sbx.git.add(work, opts);
    st = await sbx.git.status(work, opts);
    assert.deepEqual(st.fileStatus.map((f) => [f.name, f.status, f.staged]).sort(), [
      ['README.md', 'added', true],
      ['src/app.py', 'added', true],
    ]);
    assert.equal(st.stagedCount, 2);

    await sbx.git.commit(work, 'initial commit', { ...opts, authorName: 'Author Name', authorEmail: 'author@example.com' });
    st = await sbx.git.status(work, opts);
    assert.equal(st.isClean, true);
    assert.equal(st.currentBranch, 'main');
    // authorName/authorEmail set both author and committer.
    assert.equal(hostGit(work, 'log', '-1', '--format=%an <%ae>|%cn <%ce>|%s'), 'Author Name <author@example.com>|Author Name <author@example.com>|initial commit');
    // Objects written by git run as the user.
    assertOwnedBy(`${work}/.git/objects`, who);
    for (const o of fs.readdirSync(`${work}/.git/objects`).filter((n) => /^[0-9a-f]{2}$/.test(n))) assertOwnedBy(`${work}/.git/objects/${o}`, who);

    // Committing with nothing staged is git's error, surfaced as CommandExitError.
    const e = await rejection(() => sbx.git.commit(work, 'nothing', opts));
    assert.ok(e instanceof CommandExitError, `expected CommandExitError, got ${e}`);
    assert.equal(e.exitCode, 1);
  });

  test(`${who}: push to the local bare remote, clone it (path and file://, shallow), pull back`, T, async () => {
    const e = await rejection(() => sbx.git.pull(work, opts));
    assert.ok(e instanceof GitUpstreamError, `pull without upstream: expected GitUpstreamError, got ${e}`);

    await sbx.git.remoteAdd(work, 'origin', remote, opts);
    assert.equal(await sbx.git.remoteGet(work, 'origin', opts), remote);
    await sbx.git.push(work, { ...opts, remote: 'origin', branch: 'main' });
    assert.equal(hostGit(remote, 'log', '-1', '--format=%s', 'main'), 'initial commit');
    let st = await sbx.git.status(work, opts);
    assert.equal(st.upstream, 'origin/main');
    assert.equal(st.ahead, 0);

    await sbx.git.clone(remote, { ...opts, path: clone });
    assert.equal(await sbx.files.read(`${clone}/README.md`, { user: who }), '# demo\n');
    assertOwnedBy(`${clone}/src/app.py`, who);
    await sbx.git.clone(`file://${remote}`, { ...opts, path: `${dir}/shallow`, depth: 1, branch: 'main' });
    assert.equal(hostGit(`${dir}/shallow`, 'rev-parse', '--is-shallow-repository'), 'true');
    assert.equal(fs.readFileSync(`${dir}/shallow/src/app.py`, 'utf8'), 'print("hi")\n');

    // A change made in the clone (file written through the SDK), pushed on its upstream …
    await ident(clone);
    await sbx.files.write(`${clone}/README.md`, '# demo\nfrom the clone\n', { user: who });
    st = await sbx.git.status(clone, opts);
    assert.deepEqual(st.fileStatus.map((f) => [f.name, f.status, f.staged]), [['README.md', 'modified', false]]);
    await sbx.git.add(clone, { ...opts, files: ['README.md'] });
    await sbx.git.commit(clone, 'second', opts);
    assert.equal(hostGit(clone, 'log', '-1', '--format=%an <%ae>'), `Test ${who} <${who}@example.com>`, 'identity from configureUser');
    st = await sbx.git.status(clone, opts);
    assert.equal(st.ahead, 1);
    await sbx.git.push(clone, opts);
    assert.equal((await sbx.git.status(clone, opts)).ahead, 0);

    // … and pulled into the first work tree.
    await sbx.git.pull(work, opts);
    assert.equal(await sbx.files.read(`${work}/README.md`, { user: who }), '# demo\nfrom the clone\n');
    assert.equal(hostGit(work, 'log', '--format=%s', '-2'), 'second\ninitial commit');
    assertOwnedBy(`${work}/README.md`, who);
  });

  test(`${who}: branches — create, list, check out, delete`, T, async () => {
    await sbx.git.createBranch(work, 'feature/x', opts);
    let b = await sbx.git.branches(work, opts);
    assert.deepEqual([...b.branches].sort(), ['feature/x', 'main']);
    assert.equal(b.currentBranch, 'feature/x');
    await sbx.files.write(`${work}/feature.txt`, 'feature\n', { user: who });
    await sbx.git.add(work, opts);
    await sbx.git.commit(work, 'feature work', opts);

    await sbx.git.checkoutBranch(work, 'main', opts);
    b = await sbx.git.branches(work, opts);
    assert.equal(b.currentBranch, 'main');
    assert.equal(await sbx.files.exists(`${work}/feature.txt`, { user: who }), false, 'checkout removed the branch-only file');

    const e = await rejection(() => sbx.git.deleteBranch(work, 'feature/x', opts));
    assert.ok(e instanceof CommandExitError, `unmerged branch delete: expected CommandExitError, got ${e}`);
    await sbx.git.deleteBranch(work, 'feature/x', { ...opts, force: true });
    assert.deepEqual((await sbx.git.branches(work, opts)).branches, ['main']);
  });

  test(`${who}: reset (mixed, hard, to a target) and restore (worktree, staged)`, T, async () => {
    const readme = `${work}/README.md`;
    const original = fs.readFileSync(readme, 'utf8');
    // restore: worktree change undone.
    await sbx.files.write(readme, 'scribbled\n', { user: who });
    await sbx.git.restore(work, { ...opts, paths: ['README.md'] });
    assert.equal(await sbx.files.read(readme, { user: who }), original);

    // restore --staged: unstaged, the change stays in the worktree.
    await sbx.files.write(readme, 'staged change\n', { user: who });
    await sbx.git.add(work, { ...opts, files: ['README.md'] });
    assert.equal((await sbx.git.status(work, opts)).stagedCount, 1);
    await sbx.git.restore(work, { ...opts, paths: ['README.md'], staged: true });
    let st = await sbx.git.status(work, opts);
    assert.equal(st.stagedCount, 0);
    assert.deepEqual(st.fileStatus.map((f) => [f.name, f.status]), [['README.md', 'modified']]);

    // reset (mixed) unstages; reset --hard drops the change.
    await sbx.git.add(work, opts);
    await sbx.git.reset(work, { ...opts, mode: 'mixed' });
    st = await sbx.git.status(work, opts);
    assert.equal(st.stagedCount, 0);
    assert.equal(st.hasChanges, true);
    await sbx.git.reset(work, { ...opts, mode: 'hard' });
    assert.equal((await sbx.git.status(work, opts)).isClean, true);
    assert.equal(await sbx.files.read(readme, { user: who }), original);

    // reset --hard to an older commit: the file content of that commit, behind its upstream.
    await sbx.git.reset(work, { ...opts, mode: 'hard', target: 'HEAD~1' });
    assert.equal(await sbx.files.read(readme, { user: who }), '# demo\n');
    st = await sbx.git.status(work, opts);
    assert.equal(st.behind, 1);
    await sbx.git.pull(work, opts);
    assert.equal(await sbx.files.read(readme, { user: who }), original);
  });
}
