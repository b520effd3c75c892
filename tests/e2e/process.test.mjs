// process.Process end to end (contract §3, §4; issue 4): a real envd driven by connect-node
// (Connect JSON and binary over HTTP/1.1 and h2c, gRPC) and @grpc/grpc-js. The "better than envd"
// behaviours (group kill, end not hanging on background children, no wedged streams, bounded
// stdin) each have a test here.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, execSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync, chmodSync, unlinkSync } from "node:fs";
import { createHash } from "node:crypto";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import {
  startEnvd, service, waitFor, delay, withTimeout, protoDir, rawConnect, h1Bytes, parseH1Responses,
  parseConnectStream, envelope, h1Request,
} from "./lib/envd.mjs";
import { errOf } from "./lib/clients.mjs";

const RETENTION_MS = 2000;
const STALL_MS = 1500;
const LONG = process.env.ENVD_LONG === "1";

let envd, Process;
let clients; // { name: client }

function cgroupArgs() {
  // cgroup v2 where it is mounted (hybrid hosts mount it at /sys/fs/cgroup/unified).
  const line = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => / - cgroup2 /.test(l));
  return line ? ["-cgroup-root", line.split(" ")[4]] : ["-no-cgroups"];
}

before(async () => {
  // The `user` account of the SDK tests (idempotent).
  execSync("id user >/dev/null 2>&1 || useradd -m -s /bin/bash user");
  envd = await startEnvd({
    testServices: false,
    extraArgs: ["--process-retention-ms", String(RETENTION_MS), "--subscriber-stall-ms", String(STALL_MS), ...cgroupArgs()],
  });
  Process = service("process.Process");
  clients = {
    h1json: createClient(Process, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "1.1", useBinaryFormat: false })),
    h1proto: createClient(Process, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "1.1", useBinaryFormat: true })),
    h2json: createClient(Process, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "2", useBinaryFormat: false })),
    h2proto: createClient(Process, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "2", useBinaryFormat: true })),
    grpc: createClient(Process, createGrpcTransport({ baseUrl: envd.baseUrl, useBinaryFormat: true })),
  };
});

after(async () => {
  const alive = envd?.alive();
  await envd?.stop();
  assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
});

// ---------------------------------------------------------------------------------------------
// helpers

const basic = (user) => ({ authorization: `Basic ${Buffer.from(`${user}:`).toString("base64")}` });
const pidSel = (pid) => ({ selector: { case: "pid", value: pid } });
const tagSel = (tag) => ({ selector: { case: "tag", value: tag } });

/** Flattens a ProcessEvent stream into { events, error, pid, stdout, stderr, pty, end }. */
async function collect(stream, { onEvent, keepData = true } = {}) {
  const out = { events: [], error: null, pid: undefined, stdout: "", stderr: "", pty: "", end: undefined };
  try {
    for await (const res of stream) {
      const ev = res.event?.event;
      if (!ev) continue;
      if (ev.case === "start") {
        out.events.push("start");
        out.pid = ev.value.pid;
      } else if (ev.case === "data") {
        const which = ev.value.output.case;
        out.events.push(which);
        if (keepData) out[which] += Buffer.from(ev.value.output.value).toString("utf8");
      } else if (ev.case === "end") {
        out.events.push("end");
        out.end = ev.value;
      } else if (ev.case === "keepalive") {
        out.events.push("keepalive");
      }
      if (onEvent) await onEvent(ev, out);
    }
  } catch (e) {
    out.error = ConnectError.from(e);
  }
  return out;
}

/** Pids of every process in process group `pgid` (from /proc/<pid>/stat). */
function groupMembers(pgid) {
  const out = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

function aliveNotZombie(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Starts a long-running process in the background (stream kept open) and resolves its pid. */
async function startBackground(client, req, opts = {}) {
  const ac = new AbortController();
  let resolvePid;
  const pidP = new Promise((r) => { resolvePid = r; });
  const done = collect(client.start(req, { signal: ac.signal, ...opts }), {
    onEvent: (ev) => { if (ev.case === "start") resolvePid(ev.value.pid); },
  });
  const pid = await withTimeout(Promise.race([pidP, done.then((r) => { throw new Error(`stream ended before start: ${r.error}`); })]), 10000, "start event");
  return { pid, done, abort: () => ac.abort() };
}

const client = () => clients.h2proto;

// ---------------------------------------------------------------------------------------------

describe("Start: event order, exit codes, status strings", () => {
  for (const name of ["h1json", "h1proto", "h2json", "h2proto", "grpc"]) {
    it(`start, data, end in order over ${name}`, async () => {
      const r = await collect(clients[name].start({ process: { cmd: "/bin/bash", args: ["-c", "echo out; echo err >&2; exit 3"] } }));
      assert.equal(r.error, null, String(r.error));
      assert.equal(r.events[0], "start");
      assert.equal(r.events.at(-1), "end");
      assert.equal(r.events.filter((e) => e === "start").length, 1);
      assert.equal(r.events.filter((e) => e === "end").length, 1);
      assert.ok(r.pid > 0);
      assert.equal(r.stdout, "out\n");
      assert.equal(r.stderr, "err\n");
      assert.equal(r.end.exitCode, 3);
      assert.equal(r.end.exited, true);
      assert.equal(r.end.status, "exit status 3");
      assert.equal(r.end.error, "exit status 3");
    });
  }

  it("exit 0 has no error; JSON omits exitCode", async () => {
    const r = await collect(client().start({ process: { cmd: "/bin/true" } }));
    assert.equal(r.end.exitCode, 0);
    assert.equal(r.end.exited, true);
    assert.equal(r.end.status, "exit status 0");
    assert.equal(r.end.error, undefined);
    // Raw Connect JSON: defaults are omitted exactly as connect-go does.
    const body = envelope(0, JSON.stringify({ process: { cmd: "/bin/true" } }));
    const res = await h1Request(envd.port, { path: "/process.Process/Start", headers: { "content-type": "application/connect+json" }, body });
    const { messages, end } = parseConnectStream(res.body);
    assert.deepEqual(end, {});
    assert.deepEqual(messages.at(-1), { event: { end: { exited: true, status: "exit status 0" } } });
    assert.ok(messages[0].event.start.pid > 0);
  });

  it("signals: exit code -1 and Go's wording", async () => {
    for (const [sig, text] of [["TERM", "signal: terminated"], ["HUP", "signal: hangup"], ["KILL", "signal: killed"]]) {
      const r = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", `kill -${sig} $$`] } }));
      assert.equal(r.end.exitCode, -1, sig);
      assert.equal(r.end.exited, false);
      assert.equal(r.end.status, text);
      assert.equal(r.end.error, text);
    }
  });

  it("the start pid is the command's pid", async () => {
    const r = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", "echo $$"] } }));
    assert.equal(Number(r.stdout.trim()), r.pid);
  });

  it("a command that cannot be found starts, says so on stderr, and ends with 127", async () => {
    const r = await collect(client().start({ process: { cmd: "no-such-command-xyz" } }));
    assert.equal(r.error, null);
    assert.deepEqual([r.events[0], r.events.at(-1)], ["start", "end"]);
    assert.match(r.stderr, /no-such-command-xyz: not found/);
    assert.equal(r.end.exitCode, 127);
  });

  it("a file that is not executable ends with 126 and the reason", async () => {
    const f = `/tmp/envd-e2e-noexec-${process.pid}`;
    writeFileSync(f, "echo hi\n");
    chmodSync(f, 0o644);
    try {
      const r = await collect(client().start({ process: { cmd: f } }));
      assert.equal(r.events[0], "start");
      assert.match(r.stderr, /Permission denied/);
      assert.equal(r.end.exitCode, 126);
    } finally {
      unlinkSync(f);
    }
  });

  it("an executable script without #! runs with /bin/sh (execvp)", async () => {
    const f = `/tmp/envd-e2e-script-${process.pid}`;
    writeFileSync(f, "echo from-script $1\n");
    chmodSync(f, 0o755);
    try {
      const r = await collect(client().start({ process: { cmd: f, args: ["x"] } }));
      assert.equal(r.stdout, "from-script x\n");
      assert.equal(r.end.exitCode, 0);
    } finally {
      unlinkSync(f);
    }
  });
});

describe("Start: user, environment, cwd, stdin", () => {
  it("root by default: HOME/USER/LOGNAME, PATH, E2B_SANDBOX, request envs last, cwd", async () => {
    const r = await collect(client().start({
      process: {
        cmd: "/bin/bash",
        args: ["-c", 'id -un; echo "$HOME $USER $LOGNAME $FOO $E2B_SANDBOX"; pwd; cat /proc/self/oom_score_adj; test -n "$PATH" && echo path'],
        envs: { FOO: "bar" },
        cwd: "/tmp",
      },
    }));
    assert.equal(r.stdout, "root\n/root root root bar true\n/tmp\n100\npath\n");
  });

  it("request envs override HOME and PATH", async () => {
    const r = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", 'echo "$HOME|$PATH"'], envs: { HOME: "/x", PATH: "/usr/bin:/bin" } } }));
    assert.equal(r.stdout, "/x|/usr/bin:/bin\n");
  });

  it("user `user`: credentials, supplementary groups, home as cwd", async () => {
    const r = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", 'id -un; id -u; echo "$HOME $USER"; pwd; touch f.$$ && stat -c %U f.$$ && rm f.$$'] } }, { headers: basic("user") }));
    const uid = execFileSync("id", ["-u", "user"]).toString().trim();
    assert.equal(r.stdout, `user\n${uid}\n/home/user user\n/home/user\nuser\n`);
    const groups = await collect(client().start({ process: { cmd: "id", args: ["-G"] } }, { headers: basic("user") }));
    assert.equal(groups.stdout.trim(), execFileSync("id", ["-G", "user"]).toString().trim());
  });

  it("relative cwd resolves against HOME; ~ expands", async () => {
    const r = await collect(client().start({ process: { cmd: "pwd", cwd: "~" } }, { headers: basic("user") }));
    assert.equal(r.stdout, "/home/user\n");
  });

  it("unknown user → unauthenticated", async () => {
    const r = await collect(client().start({ process: { cmd: "true" } }, { headers: basic("nobody-xyz") }));
    assert.equal(r.error?.code, Code.Unauthenticated, String(r.error));
    assert.deepEqual(r.events, []);
  });

  it("missing cwd and a cwd that is a file → invalid_argument before any start", async () => {
    const a = await collect(client().start({ process: { cmd: "true", cwd: "/nonexistent-xyz" } }));
    assert.equal(a.error?.code, Code.InvalidArgument);
    assert.equal(a.error.rawMessage, "cwd '/nonexistent-xyz' does not exist");
    assert.deepEqual(a.events, []);
    const b = await collect(client().start({ process: { cmd: "true", cwd: "/etc/passwd" } }));
    assert.equal(b.error?.code, Code.InvalidArgument);
    assert.match(b.error.rawMessage, /^error starting process 'true': chdir \/etc\/passwd: not a directory/);
    assert.deepEqual(b.events, []);
  });

  it("a spawn that fails in the child (cwd not accessible to the user) → invalid_argument before start", async () => {
    execSync("mkdir -p /tmp/envd-e2e-private && chmod 700 /tmp/envd-e2e-private");
    const r = await collect(client().start({ process: { cmd: "true", cwd: "/tmp/envd-e2e-private" } }, { headers: basic("user") }));
    assert.equal(r.error?.code, Code.InvalidArgument, String(r.error));
    assert.match(r.error.rawMessage, /error starting process 'true': chdir \/tmp\/envd-e2e-private: Permission denied/);
    assert.deepEqual(r.events, []);
  });

  it("stdin absent → pipe (SendInput + CloseStdin); stdin:false → /dev/null", async () => {
    const bg = await startBackground(client(), { process: { cmd: "cat" } });
    await client().sendInput({ process: pidSel(bg.pid), input: { input: { case: "stdin", value: Buffer.from("hello ") } } });
    await clients.h1json.sendInput({ process: pidSel(bg.pid), input: { input: { case: "stdin", value: Buffer.from("world") } } });
    await client().closeStdin({ process: pidSel(bg.pid) });
    const r = await withTimeout(bg.done, 15000, "cat to end");
    assert.equal(r.stdout, "hello world");
    assert.equal(r.end.exitCode, 0);

    const n = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", "cat; readlink /proc/self/fd/0; echo done"] }, stdin: false }));
    assert.equal(n.stdout, "/dev/null\ndone\n");

    const bg2 = await startBackground(client(), { process: { cmd: "sleep", args: ["30"] }, stdin: false });
    const e = await errOf(client().sendInput({ process: pidSel(bg2.pid), input: { input: { case: "stdin", value: Buffer.from("x") } } }));
    assert.equal(e.code, Code.Internal);
    assert.equal(e.rawMessage, "error writing to stdin: stdin not enabled or closed");
    const e2 = await errOf(client().sendInput({ process: pidSel(bg2.pid), input: { input: { case: "pty", value: Buffer.from("x") } } }));
    assert.equal(e2.code, Code.Internal);
    assert.match(e2.rawMessage, /^error writing to tty: tty not assigned to process/);
    const e3 = await errOf(client().sendInput({ process: pidSel(bg2.pid), input: {} }));
    assert.equal(e3.code, Code.Unimplemented);
    const e4 = await errOf(client().update({ process: pidSel(bg2.pid), pty: { size: { cols: 10, rows: 10 } } }));
    assert.equal(e4.code, Code.Internal);
    assert.equal(e4.rawMessage, "error resizing tty: tty not assigned to process");
    await client().update({ process: pidSel(bg2.pid) }); // no pty field: no-op
    await client().closeStdin({ process: pidSel(bg2.pid) }); // stdin disabled: a no-op, twice
    await client().closeStdin({ process: pidSel(bg2.pid) });
    await client().sendSignal({ process: pidSel(bg2.pid), signal: 9 });
    await bg2.done;
  });

  it("1 MiB to the stdin of a process that never reads: the loop stays responsive", async () => {
    const bg = await startBackground(client(), { process: { cmd: "sleep", args: ["30"] }, stdin: true });
    const big = Buffer.alloc(1 << 20, 0x61);
    const send = clients.h1proto.sendInput({ process: pidSel(bg.pid), input: { input: { case: "stdin", value: big } } }).then(() => null, (e) => ConnectError.from(e));
    // Wait until envd has filled the child's stdin pipe (bytes queued in it, read through a second
    // reader opened via /proc: FIONREAD), so the checks below run while envd's write is blocked.
    const queued = () => Number(execFileSync("python3", ["-c",
      "import fcntl,os,struct,sys,termios\nfd=os.open(sys.argv[1],os.O_RDONLY|os.O_NONBLOCK)\nprint(struct.unpack('i',fcntl.ioctl(fd,termios.FIONREAD,b'\\0'*4))[0])",
      `/proc/${bg.pid}/fd/0`]).toString());
    await waitFor(() => queued() >= 60000, { timeoutMs: 20000, what: "the stdin pipe to fill" });
    // The loop answers while that write is still blocked (a blocked loop would answer nothing
    // until the child died: h1Request times out): no clock needed.
    let sendSettled = false;
    send.finally(() => { sendSettled = true; });
    for (let i = 0; i < 10; i++) {
      const r = await h1Request(envd.port, { method: "GET", path: "/health" });
      assert.equal(r.status, 204);
    }
    assert.equal(sendSettled, false, "the SendInput was still blocked while /health answered");
    // Other RPCs on the same process still work while its stdin is full.
    const list = await client().list({});
    assert.ok(list.processes.some((p) => p.pid === bg.pid));
    await client().sendSignal({ process: pidSel(bg.pid), signal: 9 });
    const err = await withTimeout(send, 15000, "SendInput to finish after the kill");
    assert.equal(err?.code, Code.Internal);
    assert.match(err.rawMessage, /broken pipe/);
    await bg.done;
  });
});

describe("timeouts and keepalives", () => {
  it("Connect-Timeout-Ms on Start kills the whole process group; the stream ends deadline_exceeded", async () => {
    let pid;
    const t0 = Date.now();
    const r = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", "sleep 100 & sleep 100"] } }, { timeoutMs: 1000 }), {
      onEvent: (ev) => { if (ev.case === "start") pid = ev.value.pid; },
    });
    assert.equal(r.error?.code, Code.DeadlineExceeded, String(r.error));
    assert.ok(Date.now() - t0 < 50000);  // vs the 100 s sleeps
    assert.ok(pid > 0);
    await waitFor(() => groupMembers(pid).length === 0, { timeoutMs: 10000, what: "the group to be gone" });
  });

  it("Connect-Timeout-Ms on Connect bounds only the attach stream", async () => {
    const bg = await startBackground(client(), { process: { cmd: "sleep", args: ["30"] } });
    const c = await collect(client().connect({ process: pidSel(bg.pid) }, { timeoutMs: 500 }));
    assert.equal(c.error?.code, Code.DeadlineExceeded);
    assert.equal(c.events[0], "start");
    await delay(200);
    assert.ok(aliveNotZombie(bg.pid), "process must survive the Connect timeout");
    assert.ok((await client().list({})).processes.some((p) => p.pid === bg.pid));
    await client().sendSignal({ process: pidSel(bg.pid), signal: 9 });
    const r = await bg.done;
    assert.equal(r.end.status, "signal: killed");
  });

  it("keepalives at Keepalive-Ping-Interval; 0, negative and garbage are harmless", async () => {
    const r = await collect(client().start({ process: { cmd: "sleep", args: ["2.3"] } }, { headers: { "keepalive-ping-interval": "1" } }));
    assert.ok(r.events.filter((e) => e === "keepalive").length >= 2, r.events.join(","));
    assert.equal(r.events[0], "start");
    assert.equal(r.events.at(-1), "end");
    for (const v of ["0", "-5", "garbage"]) {
      const x = await collect(client().start({ process: { cmd: "echo", args: ["k"] } }, { headers: { "keepalive-ping-interval": v } }));
      assert.equal(x.stdout, "k\n");
      assert.equal(x.end.exitCode, 0);
    }
  });
});

describe("Connect, List, retention, signals", () => {
  it("List shows live processes with their original config and tag; Connect by pid and tag", async () => {
    const bg = await startBackground(clients.h2json, {
      process: { cmd: "/bin/bash", args: ["-c", "read x; echo got:$x"], envs: { A: "1" }, cwd: "/tmp" },
      tag: "e2e-tag",
      stdin: true,
    });
    const list = await client().list({});
    const info = list.processes.find((p) => p.pid === bg.pid);
    assert.ok(info);
    assert.equal(info.tag, "e2e-tag");
    assert.equal(info.config.cmd, "/bin/bash");
    assert.deepEqual(info.config.args, ["-c", "read x; echo got:$x"]);
    assert.deepEqual(info.config.envs, { A: "1" });
    assert.equal(info.config.cwd, "/tmp");

    // Two attached streams (by tag and by pid) plus the Start stream all get output and the end.
    const started = [];
    const attach = (sel) => collect(clients.h1json.connect({ process: sel }), { onEvent: (ev) => { if (ev.case === "start") started.push(ev.value.pid); } });
    const byTag = attach(tagSel("e2e-tag"));
    const byPid = attach(pidSel(bg.pid));
    await waitFor(() => started.length === 2, { what: "both Connect streams to start" });
    await client().sendInput({ process: tagSel("e2e-tag"), input: { input: { case: "stdin", value: Buffer.from("hi\n") } } });
    for (const r of [await byTag, await byPid, await bg.done]) {
      assert.equal(r.error, null, String(r.error));
      assert.equal(r.stdout, "got:hi\n");
      assert.equal(r.end.exitCode, 0);
    }
    assert.deepEqual(started, [bg.pid, bg.pid]);

    // Ended: gone from List, but Connect gets start + the retained end for the retention time.
    assert.ok(!(await client().list({})).processes.some((p) => p.pid === bg.pid));
    const again = await collect(client().connect({ process: pidSel(bg.pid) }));
    assert.deepEqual(again.events, ["start", "end"]);
    assert.equal(again.pid, bg.pid);
    assert.equal(again.end.status, "exit status 0");
    const tagged = await collect(client().connect({ process: tagSel("e2e-tag") }));
    assert.deepEqual(tagged.events, ["start", "end"]);
    const e = await errOf(client().sendInput({ process: pidSel(bg.pid), input: { input: { case: "stdin", value: Buffer.from("x") } } }));
    assert.equal(e.code, Code.NotFound);
    await delay(RETENTION_MS + 200);
    const gone = await collect(client().connect({ process: pidSel(bg.pid) }));
    assert.equal(gone.error?.code, Code.NotFound);
    assert.equal(gone.error.rawMessage, `process with pid ${bg.pid} not found`);
  });

  it("selector errors", async () => {
    const a = await errOf(client().sendSignal({ process: pidSel(999999), signal: 9 }));
    assert.equal(a.code, Code.NotFound);
    assert.equal(a.rawMessage, "process with pid 999999 not found");
    const b = await errOf(client().closeStdin({ process: tagSel("no-such-tag") }));
    assert.equal(b.code, Code.NotFound);
    assert.equal(b.rawMessage, "process with tag no-such-tag not found");
    const c = await errOf(client().sendSignal({ process: {}, signal: 9 }));
    assert.equal(c.code, Code.Unimplemented);
    assert.equal(c.rawMessage, "invalid input type *process.ProcessSelector");
  });

  it("kill means gone: SIGKILL reaches the whole group", async () => {
    const bg = await startBackground(client(), { process: { cmd: "/bin/bash", args: ["-c", "sleep 100 & sleep 100"] } });
    await waitFor(() => groupMembers(bg.pid).length >= 3, { what: "bash and two sleeps" });
    await client().sendSignal({ process: pidSel(bg.pid), signal: 9 });
    const r = await withTimeout(bg.done, 15000, "end after kill");
    assert.equal(r.end.status, "signal: killed");
    await waitFor(() => groupMembers(bg.pid).length === 0, { timeoutMs: 3000, what: "nothing left in the group" });
  });

  it("additive signals: USR1, STOP/CONT, and unsupported values", async () => {
    const bg = await startBackground(client(), { process: { cmd: "/bin/bash", args: ["-c", 'trap "echo usr1; exit 7" USR1; echo ready; while :; do sleep 0.05; done'] } });
    await waitFor(async () => true);
    await client().sendSignal({ process: pidSel(bg.pid), signal: 19 }); // SIGSTOP
    await waitFor(() => readFileSync(`/proc/${bg.pid}/stat`, "utf8").split(") ")[1][0] === "T", { what: "stopped" });
    await client().sendSignal({ process: pidSel(bg.pid), signal: 18 }); // SIGCONT
    await delay(100);
    await client().sendSignal({ process: pidSel(bg.pid), signal: 10 }); // SIGUSR1
    const r = await withTimeout(bg.done, 15000, "end after USR1");
    assert.match(r.stdout, /usr1/);
    assert.equal(r.end.exitCode, 7);
    const bg2 = await startBackground(client(), { process: { cmd: "sleep", args: ["30"] } });
    const e = await errOf(client().sendSignal({ process: pidSel(bg2.pid), signal: 0 }));
    assert.equal(e.code, Code.Unimplemented);
    assert.equal(e.rawMessage, "invalid signal: SIGNAL_UNSPECIFIED");
    await client().sendSignal({ process: pidSel(bg2.pid), signal: 15 });
    assert.equal((await bg2.done).end.status, "signal: terminated");
  });
});

describe("better than envd: output", () => {
  it("end does not hang on a background child; its writer lives on 5 s after end", async () => {
    const t0 = Date.now();
    const r = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", "(while :; do echo bg; sleep 0.1; done) & echo pid:$!; sleep 60 & echo leader-done"] } }));
    assert.ok(Date.now() - t0 < 30000, `end took ${Date.now() - t0} ms`);  // vs the 60 s sleep
    assert.equal(r.end.exitCode, 0);
    const bgPid = Number(/pid:(\d+)/.exec(r.stdout)[1]);
    assert.match(r.stdout, /leader-done/);
    await delay(5000);
    assert.ok(aliveNotZombie(bgPid), "the background writer must not have died of SIGPIPE");
    try { process.kill(-r.pid, "SIGKILL"); } catch { /* already gone */ }
  });

  it("a sole slow reader loses nothing (back-pressure, no drop)", async () => {
    // ~6.9 MB of numbered lines; the client stops reading for twice the stall time.
    const n = 1000000;
    const expected = createHash("sha256");
    for (let i = 1; i <= n; i++) expected.update(`${i}\n`);
    const sock = await rawConnect(envd.port);
    const body = envelope(0, JSON.stringify({ process: { cmd: "seq", args: ["1", String(n)] } }));
    sock.sock.write(h1Bytes({ path: "/process.Process/Start", headers: { "content-type": "application/connect+json" }, body }));
    await sock.until((s) => s.data.length > 0, 15000, "first bytes");
    sock.sock.pause();
    await delay(STALL_MS * 2);
    sock.sock.resume();
    await sock.until((s) => { const p = parseH1Responses(s.data); return p.responses.length === 1; }, 30000, "the whole response");
    const res = parseH1Responses(sock.data).responses[0];
    const { messages, end } = parseConnectStream(res.body);
    sock.sock.destroy();
    assert.deepEqual(end, {});
    const h = createHash("sha256");
    let bytes = 0;
    for (const m of messages) {
      if (m.event.data?.stdout) {
        const b = Buffer.from(m.event.data.stdout, "base64");
        bytes += b.length;
        h.update(b);
      }
    }
    assert.equal(h.digest("hex"), expected.digest("hex"), `got ${bytes} bytes`);
    assert.equal(messages.at(-1).event.end.status, "exit status 0");
  });

  it("a stalled subscriber is dropped; a new Connect still gets output", async () => {
    // The Start stream is a raw HTTP/1.1 request whose socket we stop reading.
    const sock = await rawConnect(envd.port);
    const body = envelope(0, JSON.stringify({ process: { cmd: "yes", args: ["stalled-test-line"] } }));
    sock.sock.write(h1Bytes({ path: "/process.Process/Start", headers: { "content-type": "application/connect+json" }, body }));
    await sock.until((s) => s.data.toString("latin1").includes('"pid"'), 15000, "start event");
    const pid = Number(/"pid":(\d+)/.exec(sock.data.toString("latin1"))[1]);
    sock.sock.pause();
    await delay(500); // let the socket buffers and the queue fill

    let got = 0;
    const ac = new AbortController();
    const t0 = Date.now();
    const attached = collect(client().connect({ process: pidSel(pid) }, { signal: ac.signal }), {
      onEvent: (ev) => {
        if (ev.case === "data") {
          got += ev.value.output.value.length;
          if (got > 4 << 20) ac.abort();
        }
      },
    });
    await withTimeout(attached, STALL_MS + 8000, "the new Connect to receive 4 MiB");
    assert.ok(got > 4 << 20, `new Connect got ${got} bytes`);
    assert.ok(Date.now() - t0 < STALL_MS + 8000);
    await client().sendSignal({ process: pidSel(pid), signal: 9 });
    sock.sock.destroy();
    await waitFor(() => !aliveNotZombie(pid), { what: "yes to die" });
  });

  it("client disconnect mid-stream: the process lives on and no fd leaks", async () => {
    const baseline = envd.openFds();
    const bg = await startBackground(clients.h1proto, { process: { cmd: "/bin/bash", args: ["-c", "echo a; sleep 1.5; echo b > /tmp/envd-e2e-disconnect.$$"] } });
    bg.abort();
    const r = await bg.done;
    assert.ok(r.error, "the aborted stream ends with an error");
    await delay(100);
    assert.ok((await client().list({})).processes.some((p) => p.pid === bg.pid), "process still listed after disconnect");
    await waitFor(() => existsSync(`/tmp/envd-e2e-disconnect.${bg.pid}`), { timeoutMs: 15000, what: "the process to finish its work" });
    unlinkSync(`/tmp/envd-e2e-disconnect.${bg.pid}`);
    await waitFor(async () => !(await client().list({})).processes.some((p) => p.pid === bg.pid), { what: "the process to end" });
    await waitFor(() => envd.openFds() <= baseline, { timeoutMs: 15000, what: `fds back to ${baseline} (now ${envd.openFds()}: ${envd.fdTargets().join(", ")})` });
  });

  it("200 concurrent commands", async () => {
    const baseline = envd.openFds();
    const runs = [];
    for (let i = 0; i < 200; i++) {
      const c = [clients.h1json, clients.h1proto, clients.h2json, clients.h2proto][i % 4];
      runs.push(collect(c.start({ process: { cmd: "/bin/bash", args: ["-c", `echo ${i}; echo e${i} >&2`] } })));
    }
    const results = await withTimeout(Promise.all(runs), 60000, "200 commands");
    results.forEach((r, i) => {
      assert.equal(r.error, null, `#${i}: ${r.error}`);
      assert.equal(r.stdout, `${i}\n`);
      assert.equal(r.stderr, `e${i}\n`);
      assert.equal(r.end.exitCode, 0);
    });
    assert.equal(new Set(results.map((r) => r.pid)).size, 200);
    await waitFor(() => envd.openFds() <= baseline + 8, { timeoutMs: 10000, what: `fds to settle (baseline ${baseline}, now ${envd.openFds()})` });
  });
});

describe("StreamInput (client stream, h2)", () => {
  it("start then data; keepalive ignored; works over Connect and gRPC", async () => {
    for (const name of ["h2proto", "h2json", "grpc"]) {
      const bg = await startBackground(client(), { process: { cmd: "cat" }, stdin: true });
      async function* input() {
        yield { event: { case: "start", value: { process: pidSel(bg.pid) } } };
        yield { event: { case: "keepalive", value: {} } };
        yield { event: { case: "data", value: { input: { input: { case: "stdin", value: Buffer.from(`one-${name} `) } } } } };
        yield { event: { case: "data", value: { input: { input: { case: "stdin", value: Buffer.from("two") } } } } };
      }
      await clients[name].streamInput(input());
      await client().closeStdin({ process: pidSel(bg.pid) });
      const r = await withTimeout(bg.done, 15000, "cat to end");
      assert.equal(r.stdout, `one-${name} two`);
    }
  });

  it("data before start → invalid_argument (envd panics here)", async () => {
    async function* input() {
      yield { event: { case: "data", value: { input: { input: { case: "stdin", value: Buffer.from("x") } } } } };
    }
    const e = await errOf(client().streamInput(input()));
    assert.equal(e.code, Code.InvalidArgument);
  });
});

describe("PTY", () => {
  it("create, size, input, resize (SIGWINCH), CloseStdin error, kill", async () => {
    let buf = "";
    const waiters = [];
    const bg = await startBackground(client(), {
      process: { cmd: "/bin/bash", args: ["-i"], envs: { TERM: "xterm-256color", PS1: "PROMPT$ " } },
      pty: { size: { cols: 80, rows: 24 } },
    });
    // Output arrives through the Start stream; watch it via a Connect stream too.
    const watch = collect(client().connect({ process: pidSel(bg.pid) }), {
      onEvent: (ev) => {
        if (ev.case === "data") {
          assert.equal(ev.value.output.case, "pty");
          buf += Buffer.from(ev.value.output.value).toString("utf8");
          for (const w of waiters.splice(0)) w();
        }
      },
    });
    const until = (re, what) => withTimeout(new Promise((resolve) => {
      const check = () => (re.test(buf) ? resolve() : waiters.push(check));
      check();
    }), 15000, what);
    const send = (s) => client().sendInput({ process: pidSel(bg.pid), input: { input: { case: "pty", value: Buffer.from(s) } } });

    await send("trap 'echo WINCH-$(stty size)' WINCH; stty size; tty; echo $((6*7))\n");
    await until(/24 80/, "initial size 24x80");
    await until(/\/dev\/pts\/\d+/, "a controlling tty");
    await until(/\b42\b/, "the computed answer");
    await client().update({ process: pidSel(bg.pid), pty: { size: { cols: 100, rows: 30 } } });
    // bash may hold a WINCH trap that arrives while readline starts up until its next line ends:
    // an empty line makes it run pending traps (seen once on a loaded machine).
    await send("\n");
    await until(/WINCH-30 100/, "SIGWINCH with the new size");

    const e1 = await errOf(client().closeStdin({ process: pidSel(bg.pid) }));
    assert.equal(e1.code, Code.Unknown);
    assert.match(e1.rawMessage, /cannot close stdin for PTY process/);
    const e2 = await errOf(client().sendInput({ process: pidSel(bg.pid), input: { input: { case: "stdin", value: Buffer.from("x") } } }));
    assert.equal(e2.code, Code.Internal);
    assert.match(e2.rawMessage, /^error writing to stdin: tty assigned to process/);

    await client().sendSignal({ process: pidSel(bg.pid), signal: 9 });
    const r = await withTimeout(bg.done, 15000, "PTY end");
    assert.equal(r.end.status, "signal: killed");
    assert.equal(r.stdout, "");
    assert.ok(r.pty.length > 0);
    const w = await watch;
    assert.equal(w.events.at(-1), "end");
  });

  it("a PTY command exits by itself with its output as pty events", async () => {
    const r = await collect(client().start({ process: { cmd: "/bin/bash", args: ["-c", "tty; stty size; exit 4"] }, pty: { size: { cols: 120, rows: 40 } } }));
    assert.match(r.pty, /\/dev\/pts\/\d+/);
    assert.match(r.pty, /40 120/);
    assert.equal(r.stdout + r.stderr, "");
    assert.equal(r.end.exitCode, 4);
  });
});

describe("@grpc/grpc-js", () => {
  it("Start streams events in order (binary proto, h2c)", async () => {
    const def = protoLoader.loadSync(["process.proto"], { includeDirs: [protoDir()], keepCase: false, longs: String, enums: String, bytes: Buffer, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def);
    const c = new pkg.process.Process(`127.0.0.1:${envd.port}`, grpc.credentials.createInsecure());
    try {
      const events = [];
      let out = "";
      await new Promise((resolve, reject) => {
        const call = c.Start({ process: { cmd: "/bin/bash", args: ["-c", "echo grpc-out; exit 2"] } });
        call.on("data", (m) => {
          events.push(m.event.event);
          if (m.event.event === "data") out += m.event.data.stdout?.toString() ?? "";
          if (m.event.event === "end") assert.equal(m.event.end.exitCode, 2);
        });
        call.on("error", reject);
        call.on("end", resolve);
      });
      assert.equal(events[0], "start");
      assert.equal(events.at(-1), "end");
      assert.equal(out, "grpc-out\n");
    } finally {
      c.close();
    }
  });
});

describe("long forms (ENVD_LONG=1)", { skip: !LONG }, () => {
  it("1 GiB of output counted by a byte-counting client (h2c, binary)", async () => {
    const total = 1 << 30;
    let got = 0;
    const t0 = process.hrtime.bigint();
    // No response compression (the SDKs never ask for it on streams): measures envd, not gzip.
    const plain = createClient(Process, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "2", useBinaryFormat: true, acceptCompression: [] }));
    const r = await collect(plain.start({ process: { cmd: "head", args: ["-c", String(total), "/dev/zero"] } }), {
      onEvent: (ev) => { if (ev.case === "data") got += ev.value.output.value.length; },
      keepData: false,
    });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    assert.equal(r.end.exitCode, 0);
    assert.equal(got, total);
    console.log(`1 GiB in ${secs.toFixed(2)} s = ${(total / secs / 1e9).toFixed(3)} GB/s`);
  });
});
