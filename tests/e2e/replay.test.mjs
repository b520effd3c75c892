// Issue 13 part 1: output that survives a reconnect. A Start that asks for output retention gets
// DataEvent offsets; a Connect with replay_from gets exactly the bytes after what the client saw,
// then live output — or an output_lost event counting what the ring no longer holds.
// ENVD_LONG=1: 100 MiB and ten cuts instead of 16 MiB and five.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsn from "node:fs";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startEnvd, service } from "./lib/envd.mjs";
import { errOf } from "./lib/clients.mjs";

const LONG = process.env.ENVD_LONG === "1";
const SIZE = (LONG ? 100 : 16) << 20;
const CUTS = LONG ? 10 : 5;
const PIECE = 256 << 10;

let envd, small, root, file, digest;

before(async () => {
  root = fsn.mkdtempSync("/tmp/envd-e2e-replay-");
  file = path.join(root, "data");
  const fd = fsn.openSync(file, "w");
  const h = createHash("sha256");
  for (let done = 0; done < SIZE; done += 1 << 20) {
    const b = randomBytes(1 << 20);
    fsn.writeSync(fd, b);
    h.update(b);
  }
  fsn.closeSync(fd);
  digest = h.digest("hex");
  envd = await startEnvd({
    testServices: false,
    extraArgs: ["-no-cgroups", "--subscriber-stall-ms", "1000",
      "--output-retention-max-bytes", String(SIZE), "--output-retention-total-bytes", String(3 * SIZE)],
  });
  // Tight bounds: a 100000-byte budget, rings of at most 65536 bytes, ended rings not kept.
  small = await startEnvd({
    testServices: false,
    extraArgs: ["-no-cgroups", "--output-retention-max-bytes", "65536", "--output-retention-total-bytes", "100000",
      "--output-retention-ms", "0"],
  });
});

after(async () => {
  await envd?.stop();
  await small?.stop();
  for (const d of [envd, small]) if (d) assert.doesNotMatch(d.stderr(), /Sanitizer|runtime error:/);
  if (root) fsn.rmSync(root, { recursive: true, force: true });
});

const clientFor = (d, httpVersion, useBinaryFormat = true) =>
  createClient(service("process.Process"), createConnectTransport({ baseUrl: d.baseUrl, httpVersion, useBinaryFormat }));
const pidSel = (pid) => ({ selector: { case: "pid", value: pid } });

/**
 * Reads a Start/Connect stream, checking every DataEvent's offset against what was received so
 * far (no gap, no duplicate), until `cutAt` stdout bytes (then aborts) or the end.
 */
async function readStream(stream, ctl, st, cutAt) {
  for await (const res of stream) {
    const ev = res.event?.event;
    if (!ev) continue;
    if (ev.case === "start") st.pid = ev.value.pid;
    else if (ev.case === "output_lost" || ev.case === "outputLost") st.lost.push(ev.value);
    else if (ev.case === "data") {
      assert.equal(ev.value.output.case, "stdout");
      assert.equal(ev.value.offset, BigInt(st.received), "offset of the next chunk = bytes received so far");
      st.hash.update(ev.value.output.value);
      st.received += ev.value.output.value.length;
      st.chunks++;
      if (cutAt !== undefined && st.received >= cutAt) {
        ctl.abort();
        return false;
      }
    } else if (ev.case === "end") {
      st.end = ev.value;
      return true;
    }
  }
  return st.end !== undefined;
}

async function cutAndReattach(httpVersion) {
  const client = clientFor(envd, httpVersion);
  const cuts = Array.from({ length: CUTS }, () => 1 + Math.floor(Math.random() * (SIZE - 2))).sort((a, b) => a - b);
  const st = { pid: 0, received: 0, chunks: 0, lost: [], end: undefined, hash: createHash("sha256") };
  // Paced: a piece, a short pause; reattachments land both while it runs and after it ended.
  const script = `n=0; while [ $n -lt ${SIZE / PIECE} ]; do dd if=${file} bs=${PIECE} skip=$n count=1 status=none; n=$((n+1)); sleep 0.005; done`;
  let ctl = new AbortController();
  let done = false;
  try {
    done = await readStream(client.start({ process: { cmd: "sh", args: ["-c", script] }, outputRetentionBytes: BigInt(SIZE) },
      { signal: ctl.signal }), ctl, st, cuts[0]);
  } catch (e) {
    if (ConnectError.from(e).code !== Code.Canceled) throw e;
  }
  assert.ok(!done && st.pid > 0);
  for (let k = 1; k <= CUTS; ++k) {
    ctl = new AbortController();
    try {
      done = await readStream(client.connect({ process: pidSel(st.pid), replayFrom: { stdout: BigInt(st.received) } },
        { signal: ctl.signal }), ctl, st, cuts[k]);
    } catch (e) {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    }
    if (k < CUTS) assert.ok(!done, `cut ${k} at ${cuts[k]} happened before the end`);
  }
  assert.ok(done, "the last reattachment reads to the end");
  assert.deepEqual(st.lost, [], "the ring holds everything: nothing lost");
  assert.equal(st.end.exitCode, 0);
  assert.equal(st.received, SIZE);
  assert.equal(st.hash.digest("hex"), digest, "the assembled bytes are what the process wrote");
}

describe("a reader cut off at random points reattaches and assembles the exact output", () => {
  it(`HTTP/1.1, ${SIZE >> 20} MiB, ${CUTS} cuts`, { timeout: LONG ? 600_000 : 120_000 }, () => cutAndReattach("1.1"));
  it(`h2c, ${SIZE >> 20} MiB, ${CUTS} cuts`, { timeout: LONG ? 600_000 : 120_000 }, () => cutAndReattach("2"));
});

describe("replay_from", () => {
  for (const [name, httpVersion, binary] of [["HTTP/1.1 JSON", "1.1", false], ["h2c binary", "2", true]]) {
    it(`an ended process: lost bytes counted before the first replayed byte (${name})`, async () => {
      const client = clientFor(small, httpVersion, binary);
      const OUT = 1 << 20;
      const ERR = 3000;
      const events = [];
      for await (const res of client.start({
        process: { cmd: "sh", args: ["-c", `head -c ${OUT} ${file}; head -c ${ERR} ${file} >&2`] }, outputRetentionBytes: 65536n,
      })) events.push(res.event.event);
      const pid = events[0].value.pid;
      assert.equal(events.at(-1).case, "end");
      // The Start stream itself had offsets on every DataEvent.
      const seen = { stdout: 0, stderr: 0 };
      for (const ev of events.filter((e) => e.case === "data")) {
        assert.equal(ev.value.offset, BigInt(seen[ev.value.output.case]));
        seen[ev.value.output.case] += ev.value.output.value.length;
      }
      assert.deepEqual(seen, { stdout: OUT, stderr: ERR });

      // The small daemon keeps no ring after the end (--output-retention-ms 0): all is lost, counted.
      const from = { stdout: 1000n, stderr: 10n };
      const got = [];
      // With issue 13.2's exit_cause opt-in too: the end carries its cause.
      for await (const res of client.connect({ process: pidSel(pid), replayFrom: from, exitCause: true })) got.push(res.event.event);
      assert.deepEqual(got.map((e) => e.case), ["start", "outputLost", "end"]);
      assert.equal(got[1].value.stdout, BigInt(OUT - 1000));
      assert.equal(got[1].value.stderr, BigInt(ERR - 10));
      assert.equal(got[1].value.pty, 0n);
      assert.ok(got[2].value.cause, "exit_cause asked: the end has its cause");
    });
  }

  it("a live process whose ring wrapped: lost count, then exactly the retained tail, then live output", async () => {
    const client = clientFor(small, "2");
    const OUT = 1 << 20;
    const expected = fsn.readFileSync(file).subarray(0, OUT);
    // Writes 1 MiB, then waits for a line on stdin before writing the rest.
    const ctl = new AbortController();
    const starting = client.start({
      process: { cmd: "sh", args: ["-c", `head -c ${OUT} ${file}; read x; printf tail`] }, outputRetentionBytes: 65536n, stdin: true,
    }, { signal: ctl.signal });
    let pid, have = 0;
    try {
      for await (const res of starting) {
        const ev = res.event.event;
        if (ev.case === "start") pid = ev.value.pid;
        if (ev.case === "data") have += ev.value.output.value.length;
        if (have === OUT) ctl.abort();
      }
    } catch (e) {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    }
    const got = [];
    let sent = false;
    for await (const res of client.connect({ process: pidSel(pid), replayFrom: { stdout: 0n }, exitCause: true })) {
      const ev = res.event.event;
      got.push(ev);
      // Once the retained part is replayed (offset reached OUT), let it write the rest.
      const bytes = got.filter((e) => e.case === "data").reduce((n, e) => n + e.value.output.value.length, 0);
      if (!sent && got[1]?.case === "outputLost" && Number(got[1].value.stdout) + bytes === OUT) {
        sent = true;
        await client.sendInput({ process: pidSel(pid), input: { input: { case: "stdin", value: Buffer.from("go\n") } } });
      }
    }
    assert.equal(got[0].case, "start");
    assert.equal(got[1].case, "outputLost");
    const lost = Number(got[1].value.stdout);
    assert.ok(lost > OUT - 65536 && lost < OUT, `lost ${lost}`);
    const data = got.filter((e) => e.case === "data");
    let off = lost;
    for (const e of data) {
      assert.equal(e.value.offset, BigInt(off));
      off += e.value.output.value.length;
    }
    const bytes = Buffer.concat(data.map((e) => Buffer.from(e.value.output.value)));
    assert.ok(bytes.subarray(0, OUT - lost).equals(expected.subarray(lost)), "the retained tail, byte for byte");
    assert.equal(bytes.subarray(OUT - lost).toString(), "tail");
    assert.equal(got.at(-1).case, "end");
    assert.ok(got.at(-1).value.cause, "exit_cause asked: the end has its cause");
  });

  it("a PTY's output replays by its own offsets, found by tag", async () => {
    const client = clientFor(envd, "1.1", false);
    const events = [];
    for await (const res of client.start({
      process: { cmd: "sh", args: ["-c", "printf abcdef"] }, pty: { size: { cols: 80, rows: 24 } }, tag: "replay-pty", outputRetentionBytes: 4096n,
    })) events.push(res.event.event);
    const pty = Buffer.concat(events.filter((e) => e.case === "data").map((e) => Buffer.from(e.value.output.value))).toString();
    assert.equal(pty, "abcdef");
    const got = [];
    for await (const res of client.connect({ process: { selector: { case: "tag", value: "replay-pty" } }, replayFrom: { pty: 2n } })) got.push(res.event.event);
    const data = got.filter((e) => e.case === "data");
    assert.deepEqual(data.map((e) => [e.value.output.case, e.value.offset]), [["pty", 2n]]);
    assert.equal(Buffer.from(data[0].value.output.value).toString(), "cdef");
    assert.deepEqual(got.map((e) => e.case), ["start", "data", "end"]);
  });

  it("offsets only on streams that asked: a plain Connect to a retaining process has none", async () => {
    const client = clientFor(envd, "2");
    const starting = client.start({
      process: { cmd: "sh", args: ["-c", "echo early; read x; echo late"] }, outputRetentionBytes: 4096n, stdin: true,
    })[Symbol.asyncIterator]();
    const pid = (await starting.next()).value.event.event.value.pid;
    const first = (await starting.next()).value.event.event;
    assert.equal(first.value.offset, 0n);
    // A plain Connect: its start event comes once it is subscribed, so "late" reaches it too.
    const connecting = client.connect({ process: pidSel(pid) })[Symbol.asyncIterator]();
    assert.equal((await connecting.next()).value.event.event.case, "start");
    await client.sendInput({ process: pidSel(pid), input: { input: { case: "stdin", value: Buffer.from("go\n") } } });
    const plain = [];
    for (let r = await connecting.next(); !r.done; r = await connecting.next()) plain.push(r.value.event.event);
    const rest = [];
    for (let r = await starting.next(); !r.done; r = await starting.next()) rest.push(r.value.event.event);
    const late = rest.find((e) => e.case === "data");
    assert.equal(late.value.offset, 6n, "the Start stream that asked: offsets");
    const plainData = plain.filter((x) => x.case === "data");
    assert.equal(Buffer.from(plainData[0].value.output.value).toString(), "late\n");
    for (const e of plainData) assert.equal(e.value.offset, undefined, "plain Connect: no offset");
    assert.equal(plain.at(-1).case, "end");
  });

  it("bad requests get clear errors; the budget is enforced and ended rings give way", async () => {
    const client = clientFor(small, "1.1", false);
    // No retention asked: nothing to replay.
    let pid;
    for await (const res of client.start({ process: { cmd: "echo", args: ["x"] } })) pid ??= res.event.event.value.pid;
    let e = await errOf((async () => { for await (const _ of client.connect({ process: pidSel(pid), replayFrom: {} })); })());
    assert.equal(e.code, Code.FailedPrecondition, e.rawMessage);
    assert.match(e.rawMessage, /without output_retention_bytes/);

    // Two sleepers asking 65536 bytes each do not fit in 100000: the second is refused.
    const ctl = new AbortController();
    const first = client.start({ process: { cmd: "sleep", args: ["30"] }, outputRetentionBytes: 1n << 40n }, { signal: ctl.signal });
    const it1 = first[Symbol.asyncIterator]();
    const sleeper = (await it1.next()).value.event.event.value.pid;
    e = await errOf((async () => {
      for await (const _ of client.start({ process: { cmd: "sleep", args: ["30"] }, outputRetentionBytes: 65536n }));
    })());
    assert.equal(e.code, Code.ResourceExhausted, e.rawMessage);
    assert.match(e.rawMessage, /--output-retention-total-bytes/);

    // replay_from beyond what was written.
    e = await errOf((async () => {
      for await (const _ of client.connect({ process: pidSel(sleeper), replayFrom: { stdout: 5n } }));
    })());
    assert.equal(e.code, Code.OutOfRange, e.rawMessage);
    assert.match(e.rawMessage, /replay_from.stdout is 5 but the process has written 0 bytes/);

    // Once the sleeper is gone its budget is free again.
    await client.sendSignal({ process: pidSel(sleeper), signal: 9 });
    for (let r = await it1.next(); !r.done; r = await it1.next());
    const events = [];
    for await (const res of client.start({ process: { cmd: "echo", args: ["ok"] }, outputRetentionBytes: 65536n })) events.push(res.event.event.case);
    assert.equal(events.at(-1), "end");
  });
});
