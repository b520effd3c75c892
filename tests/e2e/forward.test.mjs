// Port forwarding (contract §7.5; Operations issue): services that listen only on loopback become
// reachable on --forward-address, relayed inside envd. Here the external address is 127.0.0.2 (on
// the loopback interface, so no network set-up is needed) and --forward-ports limits forwarding to
// this file's own ports, so other loopback services of the machine are left alone. Scans every
// 50 ms; every wait has a 10 s deadline.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import http from "node:http";
import { createHash } from "node:crypto";
import { execFileSync, spawn } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startEnvd, service, waitFor, withTimeout } from "./lib/envd.mjs";

const EXTERNAL = "127.0.0.2";
const DEADLINE = { timeoutMs: 10_000, intervalMs: 25 };
const LONG = process.env.ENVD_LONG === "1";
const BULK_BYTES = LONG ? 4 * 2 ** 30 : 128 << 20;

/** Ports free on 127.0.0.1 and 127.0.0.2 right now (the OS picks them). */
async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise((r) => s.listen(0, "127.0.0.1", r));
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Resolves "open" when host:port accepts a connection, "refused" when it refuses. */
function probe(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once("connect", () => { s.destroy(); resolve("open"); });
    s.once("error", (e) => resolve(e.code === "ECONNREFUSED" ? "refused" : e.code));
  });
}

/** GET http://host:port/path without keep-alive; resolves { status, bytes, sha256 }. */
function get(host, port, p, { onData } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: p, agent: false }, (res) => {
      const h = createHash("sha256");
      let bytes = 0;
      res.on("data", (c) => { bytes += c.length; h.update(c); onData?.(bytes); });
      res.on("end", () => resolve({ status: res.statusCode, bytes, sha256: h.digest("hex") }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

let envd, Process, dir, ports;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "envd-forward-"));
  writeFileSync(path.join(dir, "hello.txt"), "hello through the forward\n");
  // Sparse: the bytes are zeros, read from the page cache by python, relayed by envd.
  writeFileSync(path.join(dir, "bulk.bin"), "");
  truncateSync(path.join(dir, "bulk.bin"), BULK_BYTES);
  ports = await freePorts(7);
  envd = await startEnvd({
    testServices: false,
    extraArgs: ["-no-cgroups", "--forward-address", EXTERNAL, "--forward-scan-ms", "50",
      "--forward-ports", ports.slice(0, 4).join(",")],  // ports[4]: a loopback service never forwarded
  });
  Process = createClient(service("process.Process"),
    createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "2", useBinaryFormat: true }));
});

after(async () => {
  const alive = envd?.alive();
  await envd?.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
});

/** Starts a command through process.Process/Start; resolves { pid, ended } once it started. */
async function startProcess(cmd, args, cwd) {
  const ac = new AbortController();
  const stream = Process.start({ process: { cmd, args, cwd } }, { signal: ac.signal });
  const it = stream[Symbol.asyncIterator]();
  let pid;
  for (;;) {
    const { value, done } = await withTimeout(it.next(), 10_000, "start event");
    if (done) throw new Error("Start ended before its start event");
    if (value.event?.event.case === "start") { pid = value.event.event.value.pid; break; }
  }
  const ended = (async () => {
    try {
      for (;;) {
        const { value, done } = await it.next();
        if (done) return null;
        if (value.event?.event.case === "end") return value.event.event.value;
      }
    } catch (e) {
      return e;
    }
  })();
  return { pid, ended, abort: () => ac.abort() };
}

const kill = (pid) => Process.sendSignal({ process: { selector: { case: "pid", value: pid } }, signal: 9 });

describe("forwarding", () => {
  it("python -m http.server --bind 127.0.0.1 started through envd becomes reachable on the external address, and goes away after its exit", { timeout: 40_000 }, async () => {
    const port = ports[0];
    await Process.list({});  // the client's connection is open before the count
    const before = envd.openFds();
    assert.equal(await probe(EXTERNAL, port), "refused");
    const py = await startProcess("python3", ["-m", "http.server", "--bind", "127.0.0.1", String(port)], dir);
    let killed = false;
    try {
    // Listening on loopback first, then forwarded within a few scans.
    await waitFor(async () => (await probe("127.0.0.1", port)) === "open", { ...DEADLINE, what: "python listening" });
    const r = await waitFor(async () => {
      const g = await get(EXTERNAL, port, "/hello.txt").catch(() => null);
      return g?.status === 200 && g;
    }, { ...DEADLINE, what: `GET http://${EXTERNAL}:${port}/hello.txt` });
    assert.equal(r.bytes, "hello through the forward\n".length);
    assert.match(envd.stderr(), new RegExp(`forwarding ${EXTERNAL.replaceAll(".", "\\.")}:${port} to 127\\.0\\.0\\.1:${port}`));

    await kill(py.pid);
    killed = true;
    const end = await withTimeout(py.ended, 10_000, "python's end event");
    assert.equal(end?.status, "signal: killed");
    } finally {
      if (!killed) await kill(py.pid).catch(() => {});
    }
    await waitFor(async () => (await probe(EXTERNAL, port)) === "refused", { ...DEADLINE, what: "the forward to close" });
    assert.match(envd.stderr(), new RegExp(`service on port ${port} went away`));
    // Every fd of the forward and its relays is closed.
    await waitFor(() => envd.openFds() <= before, { ...DEADLINE, what: () => `envd's fds back to ${before}` });
  });

  it("process.List answers while a forwarded bulk transfer runs; the transfer arrives whole", { timeout: 120_000 }, async (t) => {
    const port = ports[1];
    const py = await startProcess("python3", ["-m", "http.server", "--bind", "127.0.0.1", String(port)], dir);
    try {
      await waitFor(async () => (await probe(EXTERNAL, port)) === "open", { ...DEADLINE, what: "the forward" });
      const listOnce = async () => {
        const t0 = process.hrtime.bigint();
        const l = await Process.list({});
        assert.ok(l.processes.some((p) => p.pid === py.pid), "python is listed");
        return Number(process.hrtime.bigint() - t0) / 1e6;
      };
      const idle = [];
      for (let i = 0; i < 20; i++) idle.push(await listOnce());
      // The download runs in its own processes (curl | sha256sum), so this process only times List.
      const zeros = Buffer.alloc(1 << 20);
      const h = createHash("sha256");
      for (let n = 0; n < BULK_BYTES; n += zeros.length) h.update(zeros);
      const expect = h.digest("hex");
      let finished = false;
      const started = process.hrtime.bigint();
      const transfer = new Promise((resolve, reject) => {
        const c = spawn("bash", ["-o", "pipefail", "-c",
          `curl -sf http://${EXTERNAL}:${port}/bulk.bin | tee >(wc -c >&2) | sha256sum`], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        c.stdout.on("data", (d) => { out += d; });
        c.stderr.on("data", (d) => { err += d; });
        c.on("error", reject);
        c.on("close", (code) => resolve({ code, sha256: out.split(" ")[0], bytes: Number(err.trim()) }));
      }).finally(() => { finished = true; });
      const busy = [];
      while (!finished) busy.push(await listOnce());
      const r = await transfer;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      assert.equal(r.code, 0);
      assert.equal(r.bytes, BULK_BYTES);
      assert.equal(r.sha256, expect);
      assert.ok(busy.length > 0);
      const pct = (a, q) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(2); };
      t.diagnostic(`transfer ${(BULK_BYTES / 2 ** 20).toFixed(0)} MiB in ${seconds.toFixed(2)} s (${(BULK_BYTES / 2 ** 20 / seconds).toFixed(0)} MiB/s)`);
      t.diagnostic(`process.List ms idle: p50 ${pct(idle, 0.5)} p99 ${pct(idle, 0.99)}; during the transfer (${busy.length} calls): p50 ${pct(busy, 0.5)} p99 ${pct(busy, 0.99)} max ${pct(busy, 1)}`);
    } finally {
      await kill(py.pid);
      await py.ended;
    }
  });

  it("--forward-ports leaves other ports alone; an IPv6 loopback service is forwarded with half-close", { timeout: 30_000 }, async () => {
    // ports[4] listens first; when the later ports[2] is forwarded, a scan has seen both.
    const other = net.createServer((s) => s.end());
    await new Promise((r) => other.listen(ports[4], "127.0.0.1", r));
    let v6 = true;
    const echo = net.createServer((s) => {
      const chunks = [];
      s.on("data", (c) => chunks.push(c));
      s.on("end", () => s.end(Buffer.concat([Buffer.from("got:"), ...chunks])));  // reply after the client's FIN
    });
    await new Promise((resolve) => {
      echo.once("error", () => { v6 = false; resolve(); });
      echo.listen(ports[2], "::1", resolve);
    });
    if (!v6) await new Promise((r) => echo.listen(ports[2], "127.0.0.1", r));
    try {
      await waitFor(async () => (await probe(EXTERNAL, ports[2])) === "open", { ...DEADLINE, what: "the forward" });
      assert.equal(await probe(EXTERNAL, ports[4]), "refused");
      const reply = await new Promise((resolve, reject) => {
        const s = net.connect({ host: EXTERNAL, port: ports[2] });
        const got = [];
        s.on("data", (c) => got.push(c));
        s.on("end", () => resolve(Buffer.concat(got).toString()));
        s.on("error", reject);
        s.end("ping");  // half-close: the server answers only after this FIN
      });
      assert.equal(reply, "got:ping");
      if (v6) assert.match(envd.stderr(), new RegExp(`to \\[::1\\]:${ports[2]}`));
    } finally {
      await new Promise((r) => echo.close(r));
      await new Promise((r) => other.close(r));
    }
    await waitFor(async () => (await probe(EXTERNAL, ports[2])) === "refused", { ...DEADLINE, what: "the forward to close" });
  });

  it("an external address that appears after start is used (rechecked at every scan)", { timeout: 30_000 }, async (t) => {
    // A TEST-NET-2 address added to lo for this test only, removed at the end.
    const addr = `198.51.100.${10 + (process.pid % 240)}`;
    const ip = (...a) => execFileSync("ip", a, { stdio: "pipe" });
    try { ip("addr", "del", `${addr}/32`, "dev", "lo"); } catch { /* not there: good */ }
    const late = await startEnvd({
      testServices: false,
      extraArgs: ["-no-cgroups", "--forward-address", addr, "--forward-scan-ms", "50", "--forward-ports", String(ports[5])],
    });
    const svc = net.createServer((s) => s.end("late"));
    await new Promise((r) => svc.listen(ports[5], "127.0.0.1", r));
    let added = false;
    try {
      await waitFor(() => /is not available/.test(late.stderr()), { ...DEADLINE, what: "the missing-address log line" });
      try {
        ip("addr", "add", `${addr}/32`, "dev", "lo");
        added = true;
      } catch (e) {
        t.skip(`cannot add ${addr} to lo: ${e.stderr ?? e.message}`);
        return;
      }
      await waitFor(async () => (await probe(addr, ports[5])) === "open", { ...DEADLINE, what: `the forward on ${addr}` });
      assert.match(late.stderr(), /is available now/);
      assert.equal(late.stderr().match(/is not available/g).length, 1, "logged once, not at every scan");
    } finally {
      if (added) ip("addr", "del", `${addr}/32`, "dev", "lo");
      await new Promise((r) => svc.close(r));
      await late.stop();
    }
  });

  it("--forward-max-connections-per-port holds new clients in the backlog (relays on envd's loop); --forward-fd-reserve refuses them", { timeout: 30_000 }, async () => {
    const port = ports[6];
    const accepted = [];
    const svc = net.createServer((s) => { accepted.push(s); s.on("error", () => {}); });
    await new Promise((r) => svc.listen(port, "127.0.0.1", r));
    const capped = await startEnvd({
      testServices: false,
      extraArgs: ["-no-cgroups", "--forward-address", EXTERNAL, "--forward-scan-ms", "50", "--forward-ports", String(port),
        "--forward-max-connections-per-port", "1", "--forward-thread=false"],  // relays on the loop here
    });
    const open = (p) => new Promise((resolve, reject) => {
      const c = net.connect({ host: EXTERNAL, port: p });
      c.once("connect", () => resolve(c));
      c.once("error", reject);
    });
    try {
      await waitFor(() => /forwarding 127\.0\.0\.2/.test(capped.stderr()), { ...DEADLINE, what: "the forward" });
      const c1 = await open(port);
      await waitFor(() => accepted.length === 1, { ...DEADLINE, what: "the first connection relayed" });
      const c2 = await open(port);  // completes in the kernel's backlog of the forward
      c2.on("error", () => {});
      // Not relayed while c1 lives: the service still has one connection after c2 wrote.
      c2.write("x");
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(accepted.length, 1);
      c1.destroy();
      await waitFor(() => accepted.length === 2, { ...DEADLINE, what: "the second connection relayed after the first ended" });
      c2.destroy();
    } finally {
      await capped.stop();
    }
    // A reserve larger than the fd limit: every forwarded connection is closed at once, none relayed.
    const strict = await startEnvd({
      testServices: false,
      extraArgs: ["-no-cgroups", "--forward-address", EXTERNAL, "--forward-scan-ms", "50", "--forward-ports", String(port),
        "--forward-fd-reserve", String(1 << 24)],
    });
    try {
      await waitFor(() => /forwarding 127\.0\.0\.2/.test(strict.stderr()), { ...DEADLINE, what: "the forward" });
      const c = await open(port);
      await new Promise((resolve) => { c.on("close", resolve); c.on("error", () => {}); });
      assert.equal(accepted.length, 2);
      // The log thread writes the refusal's line after the close may already have arrived.
      await waitFor(() => /--forward-fd-reserve/.test(strict.stderr()), { ...DEADLINE, what: "the fd-reserve log line" });
    } finally {
      await strict.stop();
      for (const s of accepted) s.destroy();
      await new Promise((r) => svc.close(r));
    }
  });

  it("a service on 0.0.0.0 is not forwarded (it is reachable already)", { timeout: 30_000 }, async () => {
    const any = net.createServer((s) => s.end("direct"));
    await new Promise((r) => any.listen(ports[3], "0.0.0.0", r));
    // A loopback-only marker on ports[2] that listens after it: once that is forwarded, the scan
    // that forwarded it saw ports[3] too.
    const marker = net.createServer((s) => s.end());
    await new Promise((r) => marker.listen(ports[2], "127.0.0.1", r));
    try {
      await waitFor(async () => (await probe(EXTERNAL, ports[2])) === "open", { ...DEADLINE, what: "the marker's forward" });
      assert.doesNotMatch(envd.stderr(), new RegExp(`forwarding [^ ]+:${ports[3]} `));
    } finally {
      await new Promise((r) => marker.close(r));
      await new Promise((r) => any.close(r));
    }
  });
});
