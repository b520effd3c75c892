// The official e2b JS SDK's `sandbox.files.watchDir` against our envd's WatchDir, in debug mode
// (E2B_DEBUG=true, http://localhost:49983). The file holds /tmp/envd-49983.lock (ctest:
// RESOURCE_LOCK port49983). Contract §5.7; issue 9 (Tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fsn from 'node:fs';
import path from 'node:path';
import { FilesystemEventType } from 'e2b';
import { useDebugSandbox, waitFor } from './harness.mjs';

const T = { timeout: 30_000 };
let sbx;
useDebugSandbox((_e, s) => {
  sbx = s;
});

let seq = 0;
function freshDir() {
  const d = fsn.mkdtempSync(`/tmp/envd-sdk-watch-${++seq}-`);
  return d;
}
const names = (evs) => evs.map((e) => `${e.type} ${e.name}`);

test('watchDir: create, write, chmod, rename, remove; onEvent gets them in order; stop ends it', T, async () => {
  const d = freshDir();
  const events = [];
  let exited = null;
  const h = await sbx.files.watchDir(d, (e) => events.push(e), { onExit: (err) => { exited = err ?? 'clean'; } });
  fsn.writeFileSync(path.join(d, 'a.txt'), 'x');
  fsn.chmodSync(path.join(d, 'a.txt'), 0o600);
  fsn.renameSync(path.join(d, 'a.txt'), path.join(d, 'b.txt'));
  fsn.unlinkSync(path.join(d, 'b.txt'));
  await waitFor(() => events.length >= 6, { what: '6 events' });
  assert.deepEqual(names(events), [
    `${FilesystemEventType.CREATE} a.txt`,
    `${FilesystemEventType.WRITE} a.txt`,
    `${FilesystemEventType.CHMOD} a.txt`,
    `${FilesystemEventType.RENAME} a.txt`,
    `${FilesystemEventType.CREATE} b.txt`,
    `${FilesystemEventType.REMOVE} b.txt`,
  ]);
  await h.stop();
  await waitFor(() => exited !== null, { what: 'onExit' });
  fsn.rmSync(d, { recursive: true });
});

test('watchDir: not recursive reports only the top level; recursive reports nested mkdir -p', T, async () => {
  const d = freshDir();
  const flat = [];
  const deep = [];
  const h1 = await sbx.files.watchDir(d, (e) => flat.push(e));
  const h2 = await sbx.files.watchDir(d, (e) => deep.push(e), { recursive: true });
  fsn.mkdirSync(path.join(d, 'a', 'b', 'c'), { recursive: true });
  fsn.writeFileSync(path.join(d, 'a', 'b', 'c', 'f'), '');
  fsn.writeFileSync(path.join(d, 'top'), '');
  await waitFor(() => deep.some((e) => e.name === 'a/b/c/f') && flat.some((e) => e.name === 'top'), { what: 'events' });
  const creates = (evs) => evs.filter((e) => e.type === FilesystemEventType.CREATE).map((e) => e.name).sort();
  assert.deepEqual(creates(flat), ['a', 'top']);
  assert.deepEqual(creates(deep), ['a', 'a/b', 'a/b/c', 'a/b/c/f', 'top']);
  await h1.stop();
  await h2.stop();
  fsn.rmSync(d, { recursive: true });
});

test('watchDir: includeEntry attaches EntryInfo to create/write, not to remove', T, async () => {
  const d = freshDir();
  const events = [];
  const h = await sbx.files.watchDir(d, (e) => events.push(e), { includeEntry: true });
  fsn.writeFileSync(path.join(d, 'e.txt'), 'hello');
  // The entry is a stat at send time (contract §5.7): remove the file only once the create is in.
  await waitFor(() => events.some((e) => e.type === FilesystemEventType.CREATE), { what: 'create' });
  fsn.unlinkSync(path.join(d, 'e.txt'));
  await waitFor(() => events.some((e) => e.type === FilesystemEventType.REMOVE), { what: 'remove' });
  const create = events.find((e) => e.type === FilesystemEventType.CREATE);
  assert.equal(create.entry?.name, 'e.txt');
  assert.equal(create.entry?.path, path.join(d, 'e.txt'));
  assert.equal(events.find((e) => e.type === FilesystemEventType.REMOVE).entry, undefined);
  await h.stop();
  fsn.rmSync(d, { recursive: true });
});

test('watchDir: a missing directory is NotFoundError; the watch timeout ends it through onExit', T, async () => {
  await assert.rejects(sbx.files.watchDir('/tmp/envd-sdk-watch-missing', () => {}), (e) => e.name === 'NotFoundError' || /not found/.test(e.message));
  const d = freshDir();
  let exitErr = null;
  let exited = false;
  await sbx.files.watchDir(d, () => {}, { timeoutMs: 500, onExit: (err) => { exited = true; exitErr = err; } });
  await waitFor(() => exited, { what: 'onExit after the timeout' });
  assert.ok(exitErr, 'onExit receives the deadline error');
  fsn.rmSync(d, { recursive: true });
});
