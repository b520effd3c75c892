// Service manager notifications (envd/notify.h; the issue "Started by init, and says when it is
// ready"): envd speaks systemd's sd_notify datagram protocol when $NOTIFY_SOCKET is set. A python
// helper (lib/notify_socket.py) stands in for systemd: it binds the datagram socket, a path or an
// abstract '@' name, and reports each datagram with the sender's pid.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startEnvd, service, waitFor, it } from "./lib/envd.mjs";

const helpers = new Set();
after(() => { for (const h of helpers) h.child.kill("SIGKILL"); });

/** Starts the stand-in notification socket; resolves once it is bound. */
async function listen(name) {
  const child = spawn("python3", [new URL("./lib/notify_socket.py", import.meta.url).pathname, name], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const h = { child, messages: [], bound: false };
  helpers.add(h);
  child.once("exit", () => helpers.delete(h));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const m = JSON.parse(line);
    if (m.bound) h.bound = true;
    else h.messages.push({ ...m, at: h.messages.length });
  });
  await waitFor(() => h.bound, { what: `notify socket ${name} bound` });
  h.close = () => child.stdin.end();
  h.find = (msg) => h.messages.find((m) => m.msg.split("\n").includes(msg));
  h.count = (msg) => h.messages.filter((m) => m.msg.split("\n").includes(msg)).length;
  return h;
}

/** Starts envd with `env` added to its environment (startEnvd spawns with process.env); an
 * undefined value removes the variable. */
async function startWith(env, opts = {}) {
  const saved = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await startEnvd({ testServices: false, extraArgs: ["--log-level", "debug", "-no-cgroups"], ...opts });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Runs `cmd` through process.Process/Start and returns its stdout. */
async function run(envd, cmd, args) {
  const Process = createClient(service("process.Process"),
    createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "1.1" }));
  let out = "";
  for await (const res of Process.start({ process: { cmd, args } }, { headers: { authorization: `Basic ${Buffer.from("root:").toString("base64")}` } })) {
    const ev = res.event?.event;
    if (ev?.case === "data" && ev.value.output.case === "stdout") out += Buffer.from(ev.value.output.value).toString();
  }
  return out;
}

describe("NOTIFY_SOCKET at a path", () => {
  let dir, sock, envd;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "envd-notify-"));
    sock = await listen(join(dir, "notify"));
    // 200 ms period: WATCHDOG=1 every 100 ms, for this very process (WATCHDOG_PID unset).
    envd = await startWith({ NOTIFY_SOCKET: join(dir, "notify"), WATCHDOG_USEC: "200000" });
  });
  after(async () => {
    await envd?.stop();
    sock?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("READY=1 comes from envd's own pid, and /health already answers when it arrives", async () => {
    const ready = await waitFor(() => sock.find("READY=1"), { what: "READY=1" });
    assert.equal(ready.pid, envd.pid);
    // Asked once, no retry: READY=1 must not come before the listener accepts.
    const res = await fetch(envd.url("/health"));
    assert.equal(res.status, 204);
    assert.match(ready.msg, /^STATUS=listening on port \d+$/m);
  });

  it("WATCHDOG=1 repeats at half of WATCHDOG_USEC", async () => {
    await waitFor(() => sock.count("WATCHDOG=1") >= 5, { what: "five WATCHDOG=1" });
    assert.ok(sock.messages.every((m) => m.pid === envd.pid));
    assert.match(envd.stderr(), /watchdog: WATCHDOG=1 every 100000 us/);
  });

  it("processes envd starts see neither NOTIFY_SOCKET nor WATCHDOG_*", async () => {
    const env = await run(envd, "/usr/bin/env", []);
    assert.match(env, /^PATH=/m); // the output is the environment
    assert.doesNotMatch(env, /NOTIFY_SOCKET|WATCHDOG_/);
    // Nor through a shell that could read an inherited fd: the socket is close-on-exec.
    const fds = await run(envd, "/bin/sh", ["-c", "ls -l /proc/self/fd"]);
    assert.doesNotMatch(fds, /socket:/);
  });

  it("SIGTERM sends STOPPING=1, then envd exits 0", async () => {
    const before = sock.messages.length;
    const exit = await envd.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    const stopping = await waitFor(() => sock.find("STOPPING=1"), { what: "STOPPING=1" });
    assert.ok(stopping.at >= before);
    assert.equal(stopping.pid, envd.pid);
  });
});

describe("NOTIFY_SOCKET as an abstract name", () => {
  let sock, envd;
  const name = `@envd-notify-e2e-${process.pid}`;
  before(async () => {
    sock = await listen(name);
    // The watchdog is for another process (WATCHDOG_PID is not envd's): no WATCHDOG=1.
    envd = await startWith({ NOTIFY_SOCKET: name, WATCHDOG_USEC: "2000", WATCHDOG_PID: "1" });
  });
  after(async () => {
    await envd?.stop();
    sock?.close();
  });

  it("READY=1 reaches '@name', STOPPING=1 on SIGTERM, and no WATCHDOG=1 meant for another pid", async () => {
    const ready = await waitFor(() => sock.find("READY=1"), { what: "READY=1" });
    assert.equal(ready.pid, envd.pid);
    assert.deepEqual(await envd.stop(), { code: 0, signal: null });
    await waitFor(() => sock.find("STOPPING=1"), { what: "STOPPING=1" });
    assert.equal(sock.count("WATCHDOG=1"), 0);
    assert.doesNotMatch(envd.stderr(), /watchdog: WATCHDOG=1 every/);
  });
});

describe("without NOTIFY_SOCKET", () => {
  it("envd starts, serves and stops as before, and logs nothing about notifications", async () => {
    const envd = await startWith({ NOTIFY_SOCKET: undefined, WATCHDOG_USEC: undefined, WATCHDOG_PID: undefined });
    try {
      assert.equal((await fetch(envd.url("/health"))).status, 204);
    } finally {
      assert.deepEqual(await envd.stop(), { code: 0, signal: null });
    }
    assert.doesNotMatch(envd.stderr(), /notify|NOTIFY_SOCKET|watchdog/i);
  });
});
