// Issue 7, the RPC and process half: input that used to pin memory, wedge a Start or escape as a
// plain HTTP 500 (POST /init nesting, huge command names, concurrent SendInput, NUL bytes, Connect
// framing, scalars for repeated JSON fields, libprotobuf log lines). Each test names the figure it
// checks; each failed on the code before the fix.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  it, startEnvd, service, waitFor, withTimeout, h1Request, envelope, parseConnectStream, encode, connectJson,
  rawConnect,
} from "./lib/envd.mjs";

const MiB = 1024 * 1024;
// ASan's shadow memory and quarantine inflate RSS and slow everything down: a looser memory bound
// (still far below the hundreds of MB a DOM took) and longer waits for the biggest request.
const SANITIZED = process.env.ENVD_SANITIZED === "ON";
const RSS_BOUND = (SANITIZED ? 192 : 64) * MiB;
const SLOW_MS = SANITIZED ? 90000 : 15000;

/** Peak resident memory (VmHWM) of a process, in bytes. */
function peakRss(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m[1]) * 1024;
}

/** Start over Connect streaming JSON on its own HTTP/1.1 connection: { status, messages, end }. */
async function startRaw(port, body, headers = {}) {
  const r = await h1Request(port, {
    path: "/process.Process/Start",
    headers: { "content-type": "application/connect+json", ...headers },
    body,
    timeoutMs: SLOW_MS + 5000,
  });
  return { status: r.status, ...parseConnectStream(r.body) };
}

/** Decoded stdout/stderr and the end event of a Start stream's messages. */
function outputOf(messages) {
  const out = { stdout: "", stderr: "", start: undefined, end: undefined };
  for (const m of messages) {
    const e = m.event;
    if (e.start) out.start = e.start;
    if (e.end) out.end = e.end;
    if (e.data?.stdout) out.stdout += Buffer.from(e.data.stdout, "base64").toString("latin1");
    if (e.data?.stderr) out.stderr += Buffer.from(e.data.stderr, "base64").toString("latin1");
  }
  return out;
}

const startBody = (cfg) => envelope(0, JSON.stringify({ process: cfg }));

describe("POST /init with hostile JSON (item 3)", () => {
  let envd;
  before(async () => {
    envd = await startEnvd({ testServices: false, extraArgs: ["-no-cgroups"] });
  });
  after(async () => {
    await envd?.stop();
  });

  const deepBody = (n) => Buffer.from(`{"unknown":${"[".repeat(n)}${"]".repeat(n)}}`);

  it("16 MB of nested arrays in an unknown member: 400 'nested deeper than 32 levels', peak RSS grows < 64 MiB (192 under ASan; was +607 MB)", { timeout: SLOW_MS + 30000 }, async () => {
    const before = peakRss(envd.pid);
    const r = await h1Request(envd.port, {
      path: "/init", headers: { "content-type": "application/json" }, body: deepBody(8_000_000), timeoutMs: SLOW_MS + 25000,
    });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /nested deeper than 32 levels/);
    const grew = peakRss(envd.pid) - before;
    assert.ok(grew < RSS_BOUND, `peak RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
    // At the limit it is fine, and the daemon still answers.
    const ok = await h1Request(envd.port, {
      path: "/init", headers: { "content-type": "application/json" }, body: `{"unknown":${"[".repeat(31)}${"]".repeat(31)}}`,
    });
    assert.equal(ok.status, 204);
  });

  it("with a token set, 15 MB of 5,000,000 empty objects in an unknown member and no valid token: 401, peak RSS grows < 64 MiB (192 under ASan; was +486 MB: a DOM of every member)", { timeout: SLOW_MS + 30000 }, async () => {
    const set = await h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json" }, body: '{"accessToken":"tok"}' });
    assert.equal(set.status, 204);
    try {
      const before = peakRss(envd.pid);
      const flat = Buffer.from(`{"unknown":[${"{},".repeat(5_000_000)}{}],"envVars":{"A":"1"}}`);
      const r = await h1Request(envd.port, {
        path: "/init", headers: { "content-type": "application/json", "x-access-token": "wrong" }, body: flat, timeoutMs: SLOW_MS + 25000,
      });
      assert.equal(r.status, 401);
      assert.equal(r.body.toString(), "access token reset not authorized");
      const grew = peakRss(envd.pid) - before;
      assert.ok(grew < RSS_BOUND, `peak RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
      // Field names stay case-insensitive and type errors still come before the token check.
      const typed = await h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json" }, body: '{"ENVVARS":{"A":1}}' });
      assert.equal(typed.status, 400);
    } finally {
      const clear = await h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json", "x-access-token": "tok" }, body: "{}" });
      assert.equal(clear.status, 204);
    }
  });
});

describe("process.Process under hostile input", () => {
  let envd, client;
  before(async () => {
    envd = await startEnvd({ testServices: false, extraArgs: ["-no-cgroups"] });
    client = createClient(service("process.Process"),
      createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "2", useBinaryFormat: true }));
  });
  after(async () => {
    const alive = envd?.alive();
    await envd?.stop();
    assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
  });

  it("a 100,000-byte command name that cannot run: start, its 100,021-byte message on stderr, exit 126 (the message never blocks the start; see spawn_test for the order)", async () => {
    const name = "a".repeat(100_000);
    const r = await withTimeout(startRaw(envd.port, startBody({ cmd: name })), 8000, "Start");
    assert.deepEqual(r.end, {});
    const o = outputOf(r.messages);
    assert.ok(o.start?.pid > 0);
    assert.equal(o.stderr, `${name}: File name too long\n`);
    assert.equal(o.end.exitCode, 126);
  });

  it("a 300,000-byte command name: invalid_argument 'argument list too long' (item 5: Start used to hang, child and 5 fds kept)", async () => {
    const fds = envd.openFds();
    const r = await withTimeout(startRaw(envd.port, startBody({ cmd: "a".repeat(300_000) })), 8000, "Start");
    assert.equal(r.end?.error?.code, "invalid_argument");
    assert.match(r.end.error.message, /': fork\/exec: argument list too long$/);
    assert.equal(r.messages.length, 0);
    assert.equal(envd.openFds(), fds);
  });

  it("a gzip request with a 31 MiB cmd: invalid_argument 'argument list too long' (item 5)", { timeout: SLOW_MS + 5000 }, async () => {
    const payload = gzipSync(Buffer.from(JSON.stringify({ process: { cmd: "b".repeat(31 * MiB) } })));
    const r = await withTimeout(startRaw(envd.port, envelope(1, payload), { "connect-content-encoding": "gzip" }), SLOW_MS, "Start");
    assert.equal(r.end?.error?.code, "invalid_argument");
    assert.match(r.end.error.message, /argument list too long$/);
  });

  it("16 concurrent 3 MiB SendInput calls to one process: all 16 succeed and all 50,331,648 bytes arrive (item 6: 13 of 16 failed with HTTP 500)", { timeout: SLOW_MS * 2 + 30000 }, async () => {
    const stream = client.start({ process: { cmd: "/bin/sh", args: ["-c", "wc -c"] }, stdin: true });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.value.event.event.case, "start");
    const pid = first.value.event.event.value.pid;
    let stdout = "";
    let end;
    const rest = (async () => {
      for (;;) {
        const n = await it.next();
        if (n.done) return;
        const ev = n.value.event.event;
        if (ev.case === "data") stdout += Buffer.from(ev.value.output.value).toString();
        if (ev.case === "end") end = ev.value;
      }
    })();
    const chunk = Buffer.alloc(3 * MiB, 0x61);
    const results = await Promise.allSettled(Array.from({ length: 16 }, () =>
      client.sendInput({ process: { selector: { case: "pid", value: pid } }, input: { input: { case: "stdin", value: chunk } } })));
    const failed = results.filter((r) => r.status === "rejected").map((r) => ConnectError.from(r.reason).message);
    assert.deepEqual(failed, [], `${failed.length} of 16 SendInput calls failed`);
    await client.closeStdin({ process: { selector: { case: "pid", value: pid } } });
    await rest;
    assert.equal(end.exitCode, 0);
    assert.equal(stdout.trim(), String(16 * 3 * MiB));
  });

  it("a NUL byte in cmd, args, cwd, an env key or value: invalid_argument with Go exec's words (was silently truncated)", async () => {
    const cases = [
      [{ cmd: "/bin/ec\u0000ho", args: ["x"] }, "error starting process '/bin/ec\u0000ho x': fork/exec: invalid argument"],
      [{ cmd: "/bin/echo", args: ["a\u0000b"] }, "error starting process '/bin/echo a\u0000b': fork/exec: invalid argument"],
      [{ cmd: "/bin/echo", cwd: "/tm\u0000p" }, "error starting process '/bin/echo': fork/exec: invalid argument"],
      [{ cmd: "/bin/echo", envs: { "A\u0000B": "1" } }, "error starting process '/bin/echo': exec: environment variable contains NUL"],
      [{ cmd: "/bin/echo", envs: { A: "1\u00002" } }, "error starting process '/bin/echo': exec: environment variable contains NUL"],
    ];
    for (const [cfg, message] of cases) {
      const r = await startRaw(envd.port, startBody(cfg));
      assert.deepEqual(r.end?.error, { code: "invalid_argument", message }, JSON.stringify(cfg));
      assert.equal(r.messages.length, 0);
    }
  });

  it("Connect framing on Start: 2 messages, trailing bytes, an end-stream flag or unknown flags are refused as connect-go does (were ignored)", async () => {
    const m = JSON.stringify({ process: { cmd: "/bin/echo", args: ["hi"] } });
    const cases = [
      [Buffer.concat([envelope(0, m), envelope(0, m)]), "unimplemented", "unary request has multiple messages"],
      [Buffer.concat([envelope(0, m), Buffer.from("xy")]), "invalid_argument", "protocol error: incomplete envelope: unexpected EOF"],
      [envelope(2, m), "unimplemented", "unary request has zero messages"],
      [envelope(4, m), "internal", "protocol error: invalid envelope flags 4"],
    ];
    for (const [body, code, message] of cases) {
      const r = await startRaw(envd.port, body);
      assert.deepEqual(r.end?.error, { code, message });
      assert.equal(r.messages.length, 0, "nothing started");
    }
    // An end-stream frame after the message ends the request (connect-go reads it as EOF).
    const ok = await startRaw(envd.port, Buffer.concat([envelope(0, m), envelope(2, "{}")]));
    assert.deepEqual(ok.end, {});
    assert.equal(outputOf(ok.messages).stdout, "hi\n");
  });

  it("a JSON scalar for a repeated field (args: \"hi\"): invalid_argument, as protojson (was run as [\"hi\"])", async () => {
    const r = await startRaw(envd.port, envelope(0, '{"process":{"cmd":"/bin/echo","args":"hi"}}'));
    assert.equal(r.end?.error?.code, "invalid_argument");
    assert.match(r.end.error.message, /process\.ProcessConfig\.args.*repeated field needs a JSON array/);
    assert.equal(r.messages.length, 0);
  });

  it("invalid UTF-8 in a binary string field: invalid_argument, and every stderr line of envd stays JSON (libprotobuf wrote plain text)", async () => {
    const good = encode("process.StartRequest", { process: { cmd: "/bin/echoX" } });
    const at = good.indexOf(Buffer.from("X"));
    good[at] = 0xff; // same length: only the byte changes
    const r = await h1Request(envd.port, {
      path: "/process.Process/Start", headers: { "content-type": "application/connect+proto" }, body: envelope(0, good),
    });
    const { end } = parseConnectStream(r.body, { json: false });
    assert.equal(end?.error?.code, "invalid_argument");
    await waitFor(() => /"logger":"protobuf".*invalid UTF-8/.test(envd.stderr()), { what: "the protobuf log line" });
    const lines = envd.stderr().split("\n").filter((l) => l.length > 0);
    const plain = lines.filter((l) => { try { JSON.parse(l); return false; } catch { return true; } });
    assert.deepEqual(plain, []);
  });
});

/**
 * envd's own worst event-loop lateness (µs) since the last reset, from envdtest.Echo Stats, in
 * wall time and in the loop thread's CPU time; resets both.
 */
async function loopLagUs(port) {
  const r = await connectJson(port, "/envdtest.Echo/Stats", { resetLoopLag: true });
  assert.equal(r.status, 200, `Stats answered ${r.status}`);
  return { wall: Number(r.json.maxLoopLagUs ?? 0), cpu: Number(r.json.maxLoopLagCpuUs ?? 0) };
}

/** An h2 frame: 9-byte header and payload. */
function h2Frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK literal header field without indexing, new name, no Huffman (short names and values). */
function hpackLiteral(name, value) {
  return Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

describe("the event loop during a burst of Starts (the smaller item: keep every loop turn short)", () => {
  // Loop lag is measured inside envd (a 10 ms timer's worst lateness), not as a client's wall
  // clock: before the fix, the spawns of all the Starts in one 64 KiB read ran in one loop turn
  // (4.3-9.1 s with load average 9-15 on 2 cores; without the gate, measured again at load 1:
  // 1.3 s wall, 360 ms of the loop thread's CPU); after it, one spawn per loop pass (0.04-0.25 s
  // with load average 12; 28-50 ms wall and 5.5-5.8 ms of CPU at load 1). The bound is on
  // the loop thread's CPU time, which a loaded machine does not stretch (the wall-clock lag went
  // to 753 ms once at load 16 with the fix in place): it fails a loop that runs the burst in one
  // turn, not a machine that is busy. Under ASan+UBSan every turn costs several times more CPU:
  // 310 ms was measured once with two builds beside it (each frame batch of one socket read is
  // still handled in one turn), so its bound is 1000 ms; the regression this guards against is
  // caught by the release build's bound (360 ms of CPU without the gate vs 100 ms).
  const N = 1000;
  const BOUND_MS = SANITIZED ? 1000 : 100;
  let envd;
  before(async () => {
    // The default (250 concurrent h2 streams) would refuse 750 of them: allow the whole burst.
    envd = await startEnvd({ extraArgs: ["-no-cgroups", "--h2-max-concurrent-streams", String(N)] });
  });
  after(async () => {
    await envd?.stop();
  });

  it(`${N} Starts at once on one h2c connection: envd's loop never lags more than ${BOUND_MS} ms of its CPU (was 4.3-9.1 s)`, { timeout: SLOW_MS * 4 }, async (t) => {
    const headers = Buffer.concat([
      [":method", "POST"], [":scheme", "http"], [":path", "/process.Process/Start"], [":authority", "x"],
      ["content-type", "application/connect+json"], ["connect-timeout-ms", "60000"],
    ].map(([k, v]) => hpackLiteral(k, v)));
    const body = envelope(0, JSON.stringify({ process: { cmd: "/bin/echo", args: ["ready"] } }));
    const windowUpdate = Buffer.alloc(4);
    windowUpdate.writeUInt32BE(1 << 30);
    const frames = [Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), h2Frame(4, 0, 0), h2Frame(8, 0, 0, windowUpdate)];
    for (let i = 0; i < N; i++) {
      const sid = 1 + 2 * i;
      frames.push(h2Frame(1, 0x4, sid, headers), h2Frame(0, 0x1, sid, body));
    }
    const conn = await rawConnect(envd.port);
    try {
      await loopLagUs(envd.port); // a fresh window
      // Streams ended by the server (END_STREAM on DATA or HEADERS, or RST_STREAM), and those
      // whose output said "ready" (base64 of "ready\n" in a data event).
      const ended = new Set();
      const ready = new Set();
      let off = 0;
      const scan = (st) => {
        while (st.data.length - off >= 9) {
          const len = st.data.readUIntBE(off, 3);
          if (st.data.length - off < 9 + len) break;
          const type = st.data[off + 3];
          const flags = st.data[off + 4];
          const sid = st.data.readUInt32BE(off + 5) & 0x7fffffff;
          const payload = st.data.subarray(off + 9, off + 9 + len);
          off += 9 + len;
          if (type === 4 && !(flags & 1)) st.sock.write(h2Frame(4, 1, 0)); // SETTINGS ack
          if (type === 6 && !(flags & 1)) st.sock.write(h2Frame(6, 1, 0, payload)); // PING ack
          if (type === 0 && payload.includes("cmVhZHkK")) ready.add(sid);
          if (((type === 0 || type === 1) && flags & 1) || type === 3) ended.add(sid);
        }
        return ended.size === N;
      };
      conn.sock.write(Buffer.concat(frames));
      await conn.until(scan, SLOW_MS * 3, `${N} Start streams to end`);
      const lag = await loopLagUs(envd.port);
      const lagMs = lag.cpu / 1000;
      t.diagnostic(`envd's worst loop lag during ${N} Starts: ${(lag.wall / 1000).toFixed(1)} ms wall, ${lagMs.toFixed(1)} ms of the loop thread's CPU`);
      assert.equal(ready.size, N, `every Start ran its command (${ready.size} of ${N} said ready)`);
      assert.ok(lagMs <= BOUND_MS, `envd's loop lagged ${lagMs.toFixed(1)} ms of CPU (bound ${BOUND_MS} ms)`);
    } finally {
      conn.sock.destroy();
    }
  });
});
