// Issue 13.2 end to end: typed exit causes (opt-in `exit_cause` on Start/Connect, EndEvent.cause)
// and per-command cgroup v2 limits (StartRequest.limits). Causes that need no controller (exit
// code, SendSignal, the Start deadline, a signal the process sends itself) are tested everywhere;
// the enforcement tests (OOM, pids limit) run only where `user` has the controllers delegated and
// otherwise skip printing why. Without the opt-in the end event is byte-identical to before.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execSync } from "node:child_process";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startEnvd, service, messageSchema, envelope, parseEnvelopes, h1Request, waitFor } from "./lib/envd.mjs";

let envd, plain, Process, client;
let Kind, Sender;

// The cgroup2 mount (hybrid hosts mount it at /sys/fs/cgroup/unified), or null.
const cgroup2Mount = () => {
  const line = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => / - cgroup2 /.test(l));
  return line ? line.split(" ")[4] : null;
};
const readOr = (path, fallback = null) => {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return fallback;
  }
};

before(async () => {
  const mount = cgroup2Mount();
  envd = await startEnvd({ testServices: false, extraArgs: mount ? ["-cgroup-root", mount] : ["-no-cgroups"] });
  plain = await startEnvd({ testServices: false, extraArgs: ["-no-cgroups"] });
  Process = service("process.Process");
  client = createClient(Process, createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "1.1", useBinaryFormat: true }));
  const cause = messageSchema("process.ExitCause");
  const enumValues = (e) => Object.fromEntries(e.values.map((v) => [v.name, v.number]));
  Kind = enumValues(cause.fields.find((f) => f.name === "kind").enum);
  Sender = enumValues(cause.fields.find((f) => f.name === "sent_by").enum);
});

after(async () => {
  const alive = [envd?.alive(), plain?.alive()];
  await envd?.stop();
  await plain?.stop();
  assert.ok(!alive.includes(false), `envd died during the tests:\n${envd?.tail()}\n${plain?.tail()}`);
});

const sh = (script) => ({ cmd: "/bin/sh", args: ["-c", script] });
const pidSel = (pid) => ({ selector: { case: "pid", value: pid } });

/** Reads a Start/Connect stream: { pid, end, error }; `onStart(pid)` runs at the start event. */
async function collect(stream, onStart) {
  const out = { pid: undefined, end: undefined, error: null };
  try {
    for await (const res of stream) {
      const ev = res.event?.event;
      if (ev?.case === "start") {
        out.pid = ev.value.pid;
        if (onStart) await onStart(out.pid);
      } else if (ev?.case === "end") {
        out.end = ev.value;
      }
    }
  } catch (e) {
    out.error = ConnectError.from(e);
  }
  return out;
}

/** Start over raw Connect JSON (HTTP/1.1): the envelopes' exact bytes. */
async function rawStart(port, request, headers = {}) {
  const body = envelope(0, JSON.stringify(request));
  const r = await h1Request(port, { path: "/process.Process/Start", headers: { "content-type": "application/connect+json", ...headers }, body });
  assert.equal(r.status, 200, r.body.toString());
  return parseEnvelopes(r.body).map((e) => ({ flags: e.flags, text: e.data.toString("utf8") }));
}

describe("exit cause: opt-in only", () => {
  it("without exit_cause the end event is byte-identical to the wire schema's", async () => {
    const envs = await rawStart(envd.port, { process: sh("exit 3") });
    const end = envs.find((e) => e.text.includes('"end"'));
    assert.equal(end.text, '{"event":{"end":{"exitCode":3,"exited":true,"status":"exit status 3","error":"exit status 3"}}}');
    const killed = await rawStart(envd.port, { process: sh("kill -9 $$") });
    assert.equal(killed.find((e) => e.text.includes('"end"')).text,
      '{"event":{"end":{"exitCode":-1,"status":"signal: killed","error":"signal: killed"}}}');
    // Asking for it adds `cause` and nothing else.
    const withCause = await rawStart(envd.port, { process: sh("exit 3"), exitCause: true });
    assert.equal(withCause.find((e) => e.text.includes('"end"')).text,
      '{"event":{"end":{"exitCode":3,"exited":true,"status":"exit status 3","error":"exit status 3","cause":{"kind":"KIND_EXITED","exitCode":3}}}}');
  });

  it("a Connect without the opt-in gets no cause even when the Start asked", async () => {
    let connected, subscribed;
    const attached = new Promise((res) => { subscribed = res; });
    const r = await collect(client.start({ process: { cmd: "sleep", args: ["30"] }, exitCause: true }), async (pid) => {
      // The Connect's start event says it is subscribed; then the signal.
      connected = collect(client.connect({ process: pidSel(pid) }), subscribed);
      await attached;
      await client.sendSignal({ process: pidSel(pid), signal: 15 });
    });
    const c = await connected;
    assert.equal(r.end.cause.kind, Kind.KIND_SIGNALED);
    assert.equal(r.end.cause.sentBy, Sender.SENDER_SEND_SIGNAL);
    assert.equal(c.end.status, "signal: terminated");
    assert.equal(c.end.cause, undefined);
  });
});

describe("exit cause: no controller needed", () => {
  it("an exit code", async () => {
    const r = await collect(client.start({ process: sh("exit 7"), exitCause: true }));
    assert.equal(r.error, null);
    assert.equal(r.end.status, "exit status 7");
    assert.equal(r.end.cause.kind, Kind.KIND_EXITED);
    assert.equal(r.end.cause.exitCode, 7);
    assert.equal(r.end.cause.signal, 0);
    assert.equal(r.end.cause.sentBy, Sender.SENDER_UNSPECIFIED);
  });

  it("SIGKILL through SendSignal", async () => {
    const r = await collect(client.start({ process: { cmd: "sleep", args: ["30"] }, exitCause: true }), (pid) =>
      client.sendSignal({ process: pidSel(pid), signal: 9 }));
    assert.equal(r.end.status, "signal: killed");
    assert.equal(r.end.exitCode, -1);
    assert.deepEqual(
      { kind: r.end.cause.kind, signal: r.end.cause.signal, name: r.end.cause.signalName, by: r.end.cause.sentBy, code: r.end.cause.exitCode },
      { kind: Kind.KIND_SIGNALED, signal: 9, name: "SIGKILL", by: Sender.SENDER_SEND_SIGNAL, code: -1 });
  });

  it("the Start deadline (the request's timeout)", async () => {
    // Raw Connect JSON with Connect-Timeout-Ms: the stream ends deadline_exceeded, and its end event
    // may or may not win that race (contract §4.2); Connect serves the retained end with the cause.
    const envs = await rawStart(envd.port, { process: { cmd: "sleep", args: ["30"] }, exitCause: true },
      { "connect-timeout-ms": "400" });
    const last = envs.at(-1);
    assert.equal(last.flags & 0x02, 0x02);
    assert.equal(JSON.parse(last.text).error?.code, "deadline_exceeded");
    const expected = '{"event":{"end":{"exitCode":-1,"status":"signal: killed","error":"signal: killed","cause":' +
      '{"kind":"KIND_SIGNALED","exitCode":-1,"signal":9,"signalName":"SIGKILL","sentBy":"SENDER_START_DEADLINE"}}}}';
    const end = envs.find((e) => e.text.includes('"end"'));
    if (end) assert.equal(end.text, expected);
    const pid = JSON.parse(envs[0].text).event.start.pid;
    const c = await collect(client.connect({ process: pidSel(pid), exitCause: true }));
    assert.equal(c.end.status, "signal: killed");
    assert.equal(c.end.cause.signalName, "SIGKILL");
    assert.equal(c.end.cause.sentBy, Sender.SENDER_START_DEADLINE);
  });

  it("a signal the process sends itself is not envd's", async () => {
    const r = await collect(client.start({ process: sh("kill -USR1 $$"), exitCause: true }));
    assert.equal(r.end.status, "signal: user defined signal 1");
    assert.equal(r.end.cause.kind, Kind.KIND_SIGNALED);
    assert.equal(r.end.cause.signalName, "SIGUSR1");
    assert.equal(r.end.cause.sentBy, Sender.SENDER_OTHER);
  });

  it("SIGTERM from SendSignal, then the retained end on Connect, with and without the opt-in", async () => {
    let pid;
    const r = await collect(client.start({ process: { cmd: "sleep", args: ["30"] } }), async (p) => {
      pid = p;
      await client.sendSignal({ process: pidSel(p), signal: 15 });
    });
    assert.equal(r.end.cause, undefined); // the Start did not ask
    const retained = await collect(client.connect({ process: pidSel(pid), exitCause: true }));
    assert.equal(retained.end.status, "signal: terminated");
    assert.equal(retained.end.cause.signalName, "SIGTERM");
    assert.equal(retained.end.cause.sentBy, Sender.SENDER_SEND_SIGNAL);
    const bare = await collect(client.connect({ process: pidSel(pid) }));
    assert.equal(bare.end.status, "signal: terminated");
    assert.equal(bare.end.cause, undefined);
  });
});

describe("cgroup layout", () => {
  it("ordinary commands run in the leaf user/default (on this machine's cgroup2)", async (t) => {
    const mount = cgroup2Mount();
    if (!mount) return t.skip("no cgroup2 mount in /proc/self/mountinfo");
    const line = async (req) => {
      let out = "";
      for await (const res of client.start(req)) {
        const ev = res.event?.event;
        if (ev?.case === "data") out += Buffer.from(ev.value.output.value).toString();
      }
      return out.split(/\r?\n/).find((l) => l.startsWith("0::"));
    };
    assert.match(await line({ process: { cmd: "cat", args: ["/proc/self/cgroup"] } }), /^0::.*\/user\/default$/);
    assert.match(await line({ process: { cmd: "cat", args: ["/proc/self/cgroup"] }, pty: { size: { cols: 80, rows: 24 } } }), /^0::.*\/ptys$/);
    assert.doesNotMatch(await line({ process: { cmd: "cat", args: ["/proc/self/cgroup"] }, tag: "_system" }), /\/user/);
  });
});

describe("per-command limits", () => {
  const errOf = async (c, req) => (await collect(c.start(req))).error;

  it("are refused with failed_precondition where cgroups are off", async () => {
    const c = createClient(Process, createConnectTransport({ baseUrl: plain.baseUrl, httpVersion: "1.1" }));
    const e = await errOf(c, { process: sh("exit 0"), limits: { memoryBytes: 64n << 20n } });
    assert.equal(e?.code, Code.FailedPrecondition);
    assert.equal(e.rawMessage, "per-command limits need cgroup v2: cgroups are disabled (-no-cgroups)");
    // An empty Limits limits nothing: an ordinary Start.
    const ok = await collect(c.start({ process: sh("exit 0"), limits: {} }));
    assert.equal(ok.error, null);
    assert.equal(ok.end.status, "exit status 0");
  });

  it("bad values are invalid_argument, before anything else", async () => {
    const e = await errOf(client, { process: sh("exit 0"), limits: { cpuWeight: 0 } });
    assert.equal(e?.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "limits.cpu_weight must be in 1..10000, got 0");
    const sys = await errOf(client, { process: sh("exit 0"), tag: "_system", limits: { maxProcesses: 4 } });
    assert.equal(sys?.code, Code.InvalidArgument);
  });

  it("refusals leave no fd behind", async () => {
    const c = createClient(Process, createConnectTransport({ baseUrl: plain.baseUrl, httpVersion: "1.1" }));
    const refuse = async () => {
      for (let i = 0; i < 20; i++) {
        assert.equal((await errOf(c, { process: sh("exit 0"), limits: { maxProcesses: 8 } }))?.code, Code.FailedPrecondition);
        assert.equal((await errOf(c, { process: sh("exit 0"), limits: { memoryBytes: 1n } }))?.code, Code.InvalidArgument);
      }
    };
    await refuse(); // warm-up: connections and pools settle
    const before = plain.openFds();
    await refuse();
    // Keep-alive connections come and go with the client's pool: wait for them, not for a leak.
    await waitFor(() => plain.openFds() <= before, { timeoutMs: 10000, what: `envd's fds back to ${before} (now ${plain.openFds()})` });
  });

  it("name the controller that is missing on this machine's cgroup2 (or run where it is there)", async (t) => {
    const mount = cgroup2Mount();
    if (!mount) return t.skip("no cgroup2 mount in /proc/self/mountinfo");
    const enabled = readOr(`${mount}/user/cgroup.subtree_control`, "").split(/\s+/);
    const r = await collect(client.start({ process: sh("exit 0"), limits: { memoryBytes: 64n << 20n } }));
    if (enabled.includes("memory")) {
      assert.equal(r.error, null);
      assert.equal(r.end.status, "exit status 0");
    } else {
      assert.equal(r.error?.code, Code.FailedPrecondition);
      assert.match(r.error.rawMessage, new RegExp(`missing: memory .*${mount}/user`));
    }
  });
});

// Enforcement: only where `user` has the controller delegated. The exact reason is printed.
function delegatedOrSkip(t, controller) {
  const mount = cgroup2Mount();
  const reason = !mount
    ? "no cgroup2 mount in /proc/self/mountinfo"
    : (() => {
      const enabled = readOr(`${mount}/user/cgroup.subtree_control`, "");
      if (enabled.split(/\s+/).includes(controller)) return null;
      return `controller ${controller} is not delegated: ${mount}/user/cgroup.subtree_control is "${enabled}", ` +
        `${mount}/user/cgroup.controllers is "${readOr(`${mount}/user/cgroup.controllers`, "(unreadable)")}", ` +
        `${mount}/cgroup.controllers is "${readOr(`${mount}/cgroup.controllers`, "(unreadable)")}"`;
    })();
  if (reason) {
    console.log(`# skip (${t.name}): ${reason}`);
    t.skip(reason);
    return null;
  }
  return mount;
}

describe("per-command limits: enforcement (delegated cgroup v2 only)", () => {
  it("an allocation past its memory limit ends with cause OOM", async (t) => {
    if (!delegatedOrSkip(t, "memory")) return;
    const r = await collect(client.start({
      process: { cmd: "awk", args: ["BEGIN { s = sprintf(\"%400000000s\", \"\"); print length(s) }"] },
      exitCause: true,
      limits: { memoryBytes: 32n << 20n },
    }));
    assert.equal(r.error, null);
    assert.equal(r.end.cause.kind, Kind.KIND_OOM_KILLED, JSON.stringify(r.end));
    assert.ok(r.end.cause.oomKills >= 1n);
  });

  it("a fork loop stops at its pids limit", async (t) => {
    const mount = delegatedOrSkip(t, "pids");
    if (!mount) return;
    // The group's pids.max is read back by the command itself before any fork; the loop is
    // bounded (200 iterations) and runs under an outer prlimit --nproc guard as the `user` account
    // (RLIMIT_NPROC does not bind root).
    const script = `g=${mount}$(sed -n 's/^0:://p' /proc/self/cgroup); m=$(cat "$g/pids.max");` +
      ` [ "$m" = 8 ] || { echo "pids.max is $m" >&2; exit 90; };` +
      ` i=0; while [ $i -lt 200 ]; do sleep 2 & i=$((i+1)); done 2>/dev/null; exit 0`;
    execSync("id user >/dev/null 2>&1 || useradd -m -s /bin/bash user");
    const auth = { authorization: `Basic ${Buffer.from("user:").toString("base64")}` };
    const r = await collect(client.start({
      process: { cmd: "prlimit", args: ["--nproc=256", "--", "/bin/sh", "-c", script] },
      exitCause: true,
      limits: { maxProcesses: 8 },
    }, { headers: auth }));
    assert.equal(r.error, null);
    assert.notEqual(r.end.exitCode, 90, "pids.max was not the requested limit");
    assert.equal(r.end.cause.kind, Kind.KIND_PIDS_LIMIT, JSON.stringify(r.end));
    assert.ok(r.end.cause.pidsMaxHits >= 1n);
  });
});
