// Control endpoints and identity against a real envd (contract §1.2, §1.6, §2, §6.1–6.4, §7.1):
// /health, /envs, /init (token set/replace/clear, 401s, bad bodies, timestamp ordering, env
// replace), /metrics and its history, the access token gate, the Basic user on REST and RPC
// paths, request logs, flags, and graceful shutdown with open streams. Clients: fetch and curl.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startEnvd, envdBin, envelope, parseConnectStream, parseEnvelopes, h1Request, h2Connect, h2Request, waitFor, connectJson } from "./lib/envd.mjs";
import { curl } from "./lib/clients.mjs";

const VERSION = "0.6.6";
const GATE_BODY = '{"code":401,"message":"unauthorized access, please provide a valid access token or method signing if supported"}\n';
const basic = (user) => `Basic ${Buffer.from(`${user}:`).toString("base64")}`;
const METRIC_FIELDS = ["ts", "cpu_count", "cpu_used_pct", "mem_total_mib", "mem_used_mib", "mem_total", "mem_used", "mem_cache", "disk_used", "disk_total"];

/** fetch with the body read: { status, headers (Headers), text }. */
async function req(envd, path, { method = "GET", headers = {}, body } = {}) {
  const r = await fetch(envd.url(path), { method, headers, body });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

const init = (envd, body, headers = {}) =>
  req(envd, "/init", { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });

/** The daemon's JSON log lines. */
const logLines = (envd) => envd.stderr().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));

describe("control endpoints", () => {
  let envd;
  before(async () => {
    envd = await startEnvd({ extraArgs: ["--isnotfc", "--metrics-interval-ms", "100"] });
  });
  after(async () => {
    const alive = envd?.alive();
    const exit = await envd?.stop();
    assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
    assert.equal(exit.code, 0, `envd exit ${JSON.stringify(exit)}\n${envd.tail()}`);
  });

  it("GET /health → 204, Cache-Control: no-store (curl)", async () => {
    const r = await curl(envd.url("/health"));
    assert.equal(r.status, 204);
    assert.equal(r.headers["cache-control"], "no-store");
    assert.equal(r.text, "");
  });

  it("Date: /health, an RPC, a 404 and an h2c RPC carry a current IMF-fixdate (RFC 9110 §6.6.1)", async () => {
    const imf = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/;
    const check = (date, what) => {
      assert.match(date ?? "", imf, `${what}: Date ${date}`);
      const skew = Math.abs(Date.parse(date) - Date.now());
      assert.ok(skew < 5000, `${what}: Date ${date} is ${skew} ms off`);
    };
    const health = await curl(envd.url("/health"));
    assert.equal(health.status, 204);
    check(health.headers["date"], "/health");
    const rpc = await connectJson(envd.port, "/process.Process/List", {});
    assert.equal(rpc.status, 200);
    check(rpc.headers["date"], "RPC");
    const missing = await curl(envd.url("/no-such-path"));
    assert.equal(missing.status, 404);
    check(missing.headers["date"], "404");
    const session = await h2Connect(envd.port);
    try {
      const h2 = await h2Request(session, { path: "/process.Process/List", headers: { "content-type": "application/json" }, body: "{}" });
      assert.equal(h2.status, 200);
      check(h2.headers["date"], "h2c RPC");
    } finally {
      session.close();
    }
  });

  it("GET /envs → the global environment as JSON", async () => {
    const r = await req(envd, "/envs");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("cache-control"), "no-store");
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.ok(r.text.endsWith("}\n"));
    assert.deepEqual(JSON.parse(r.text), { E2B_SANDBOX: "false" });
  });

  it("POST /init: bad bodies → 400 without a body, always X-Envd-Version", async () => {
    for (const body of ["{not json", "[]", '{"accessToken":""}', '{"accessToken":"a\\\\b"}', '{"accessToken":7}', '{"envVars":{"A":1}}', '{"timestamp":"yesterday"}']) {
      const r = await init(envd, body);
      assert.equal(r.status, 400, body);
      assert.equal(r.text, "", body);
      assert.equal(r.headers.get("x-envd-version"), VERSION, body);
      assert.equal(r.headers.get("cache-control"), "no-store", body);
    }
    // No body at all, and a body in odd letter case, are fine.
    const empty = await req(envd, "/init", { method: "POST" });
    assert.equal(empty.status, 204);
    assert.equal(empty.headers.get("x-envd-version"), VERSION);
    assert.equal((await init(envd, '{"ENVVARS":{"CASE":"x"},"unknownField":1}')).status, 204);
    assert.equal(JSON.parse((await req(envd, "/envs")).text).CASE, "x");
  });

  it("POST /init: envVars replace the user variables; internal E2B_* stay", async () => {
    assert.equal((await init(envd, { envVars: { A: "1", B: "<2>", E2B_SANDBOX: "hijack" } })).status, 204);
    let envs = await req(envd, "/envs");
    assert.ok(envs.text.includes('"B":"\\u003c2\\u003e"'), envs.text);  // Go's HTML-safe escaping
    assert.deepEqual(JSON.parse(envs.text), { A: "1", B: "<2>", E2B_SANDBOX: "false" });
    assert.equal((await init(envd, { envVars: { C: "3" } })).status, 204);
    assert.deepEqual(JSON.parse((await req(envd, "/envs")).text), { C: "3", E2B_SANDBOX: "false" });
    assert.equal((await init(envd, { defaultUser: "root" })).status, 204);  // envVars absent: unchanged
    assert.deepEqual(JSON.parse((await req(envd, "/envs")).text), { C: "3", E2B_SANDBOX: "false" });
    assert.equal((await init(envd, { envVars: {} })).status, 204);
    envs = await req(envd, "/envs");
    assert.deepEqual(JSON.parse(envs.text), { E2B_SANDBOX: "false" });
  });

  it("POST /init: an older timestamp is skipped but answered 204; equal counts as newer", async () => {
    const t2 = "2031-06-01T00:00:00.5Z";
    assert.equal((await init(envd, { timestamp: t2, envVars: { V: "new" } })).status, 204);
    const older = await init(envd, { timestamp: "2031-06-01T00:00:00.4Z", envVars: { V: "old" } });
    assert.equal(older.status, 204);
    assert.equal(JSON.parse((await req(envd, "/envs")).text).V, "new");
    assert.equal((await init(envd, { timestamp: "2031-06-01T02:00:00.5+02:00", envVars: { V: "same" } })).status, 204);
    assert.equal(JSON.parse((await req(envd, "/envs")).text).V, "same");
    // Without a timestamp: applied.
    assert.equal((await init(envd, { envVars: { V: "untimed" } })).status, 204);
    assert.equal(JSON.parse((await req(envd, "/envs")).text).V, "untimed");
    assert.equal((await init(envd, { envVars: {} })).status, 204);
  });

  it("POST /init: orchestrator-only fields are accepted and logged as ignored", async () => {
    const r = await init(envd, { hyperloopIP: "10.0.0.9", caBundle: "-----BEGIN CERTIFICATE-----\n", volumeMounts: [{ nfs_target: "h:/v", path: "/mnt/v" }], lifecycleID: "l1" });
    assert.equal(r.status, 204);
    const line = await waitFor(() => logLines(envd).find((l) => l.logger === "init" && /ignored.*hyperloopIP.*caBundle.*volumeMounts.*lifecycleID/.test(l.message)), { what: "the ignored-fields log line" });
    // The line carries the id of its request's log line.
    const request = await waitFor(() => logLines(envd).find((l) => l.logger === "http" && l.request_id === line.request_id), { what: "the matching request line" });
    assert.equal(request.path, "/init");
    assert.equal(request.status, 204);
  });

  it("access token: set by /init, then required everywhere except the exempt set", async () => {
    const token = "tok-e2e-Secret-123";
    assert.equal((await init(envd, { accessToken: token })).status, 204);
    try {
      const denied = await curl(envd.url("/envs"));
      assert.equal(denied.status, 401);
      assert.equal(denied.text, GATE_BODY);
      assert.equal(denied.headers["content-type"], "application/json; charset=utf-8");
      assert.equal(denied.headers["x-content-type-options"], "nosniff");
      assert.equal((await req(envd, "/envs", { headers: { "x-access-token": "wrong" } })).status, 401);
      assert.equal((await req(envd, "/envs", { headers: { "x-access-token": token } })).status, 200);
      assert.equal((await req(envd, "/metrics")).status, 401);
      assert.equal((await req(envd, "/metrics", { headers: { "x-access-token": token } })).status, 200);
      // Exempt: exactly GET /health, GET /files, POST /files, POST /init (the gate lets them through).
      assert.equal((await req(envd, "/health")).status, 204);
      // (/files then checks the token or a URL signature itself: its own 401 words, not the gate's.)
      assert.notEqual((await req(envd, "/files")).text, GATE_BODY);
      assert.notEqual((await req(envd, "/files", { method: "POST" })).text, GATE_BODY);
      // Not exempt: trailing slashes, HEAD /files, /files/compose, unknown paths.
      for (const [method, path] of [["GET", "/health/"], ["HEAD", "/files"], ["POST", "/files/compose"], ["GET", "/files/"], ["GET", "/nowhere"], ["POST", "/health"]]) {
        const r = await req(envd, path, { method });
        assert.equal(r.status, 401, `${method} ${path}`);
        if (method !== "HEAD") assert.equal(r.text, GATE_BODY, `${method} ${path}`);
      }
      // RPC paths get the same plain JSON shape, whatever the protocol.
      for (const ct of ["application/json", "application/connect+json", "application/grpc-web+proto"]) {
        const r = await h1Request(envd.port, { path: "/process.Process/List", headers: { "content-type": ct }, body: ct === "application/json" ? "{}" : envelope(0, "{}") });
        assert.equal(r.status, 401, ct);
        assert.equal(r.body.toString(), GATE_BODY, ct);
      }
      const withToken = await connectJson(envd.port, "/process.Process/List", {}, { "x-access-token": token });
      assert.notEqual(withToken.status, 401);
      // CORS preflight is answered before the gate.
      const pre = await req(envd, "/envs", { method: "OPTIONS", headers: { origin: "http://example.com", "access-control-request-method": "GET" } });
      assert.equal(pre.status, 204);

      // /init: a different token without proof → validation failed; no token → reset not authorized.
      const mismatch = await init(envd, { accessToken: "other" });
      assert.equal(mismatch.status, 401);
      assert.equal(mismatch.text, "access token validation failed");
      assert.equal(mismatch.headers.get("x-content-type-options"), null);
      assert.match(mismatch.headers.get("content-type"), /^text\/plain/);
      assert.equal(mismatch.headers.get("x-envd-version"), VERSION);
      const reset = await init(envd, {});
      assert.equal(reset.status, 401);
      assert.equal(reset.text, "access token reset not authorized");
      assert.equal((await init(envd, {}, { "x-access-token": "wrong" })).status, 401);
      // Re-init with the current token in the body (the orchestrator's way) keeps it.
      assert.equal((await init(envd, { accessToken: token })).status, 204);
      assert.equal((await req(envd, "/envs", { headers: { "x-access-token": token } })).status, 200);

      // Replace: the header proves the current token; the body carries the new one.
      const token2 = "tok-e2e-Second-456";
      assert.equal((await init(envd, { accessToken: token2 }, { "x-access-token": token })).status, 204);
      assert.equal((await req(envd, "/envs", { headers: { "x-access-token": token } })).status, 401);
      assert.equal((await req(envd, "/envs", { headers: { "x-access-token": token2 } })).status, 200);
      // Clear: proof in the header, no accessToken in the body.
      assert.equal((await init(envd, {}, { "x-access-token": token2 })).status, 204);
      assert.equal((await req(envd, "/envs")).status, 200);
      // The token never reaches the logs.
      assert.ok(!envd.stderr().includes(token) && !envd.stderr().includes(token2), "token found in the logs");
    } finally {
      // Leave the daemon open for the other tests whatever happened above.
      await init(envd, {}, { "x-access-token": token });
      await init(envd, {}, { "x-access-token": "tok-e2e-Second-456" });
    }
  });

  it("Basic user: an unknown user → 401 unauthenticated on REST and RPC; /health stays 204", async () => {
    const bogus = { authorization: basic("no-such-user-e2e") };
    const r = await req(envd, "/envs", { headers: bogus });
    assert.equal(r.status, 401);
    assert.deepEqual(JSON.parse(r.text), { code: "unauthenticated", message: "invalid username: 'no-such-user-e2e'" });
    assert.equal((await req(envd, "/metrics", { headers: bogus })).status, 401);
    assert.equal((await init(envd, {}, bogus)).status, 401);
    assert.equal((await req(envd, "/health", { headers: bogus })).status, 204);
    const empty = await req(envd, "/envs", { headers: { authorization: basic("") } });
    assert.equal(empty.status, 401);
    assert.equal(JSON.parse(empty.text).message, "invalid username: ''");
    const rpc = await connectJson(envd.port, "/process.Process/List", {}, bogus);
    assert.equal(rpc.status, 401);
    assert.deepEqual(rpc.json, { code: "unauthenticated", message: "invalid username: 'no-such-user-e2e'" });
    // Streaming Connect: HTTP 200 with the error in the end frame.
    const stream = await h1Request(envd.port, { path: "/envdtest.Echo/Ticks", headers: { "content-type": "application/connect+json", ...bogus }, body: envelope(0, "{}") });
    assert.equal(stream.status, 200);
    assert.equal(parseConnectStream(stream.body).end.error.code, "unauthenticated");
    // Known users, malformed and non-Basic headers: the default user applies.
    assert.equal((await req(envd, "/envs", { headers: { authorization: basic("root") } })).status, 200);
    assert.equal((await req(envd, "/envs", { headers: { authorization: "Basic !!!" } })).status, 200);
    assert.equal((await req(envd, "/envs", { headers: { authorization: "Bearer abc" } })).status, 200);
  });

  it("GET /metrics: every field, with the right types", async () => {
    const r = await req(envd, "/metrics");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("cache-control"), "no-store");
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.ok(r.text.endsWith("}\n"));
    const m = JSON.parse(r.text);
    assert.deepEqual(Object.keys(m), METRIC_FIELDS);
    for (const k of METRIC_FIELDS) assert.equal(typeof m[k], "number", k);
    for (const k of METRIC_FIELDS.filter((k) => k !== "cpu_used_pct")) assert.ok(Number.isInteger(m[k]), k);
    assert.ok(Math.abs(m.ts - Date.now() / 1000) < 30, `ts ${m.ts}`);
    assert.ok(m.cpu_count >= 1);
    assert.ok(m.cpu_used_pct >= 0 && m.cpu_used_pct <= 100);
    assert.equal(Math.round(m.cpu_used_pct * 100) / 100, m.cpu_used_pct);
    assert.equal(m.mem_total_mib, Math.floor(m.mem_total / 2 ** 20));
    assert.ok(m.mem_used <= m.mem_total && m.mem_used > 0);
    assert.ok(m.disk_total > 0 && m.disk_used <= m.disk_total);
  });

  it("GET /metrics?history=1: the sampler's recent samples, oldest first", async () => {
    const samples = await waitFor(async () => {
      const r = await req(envd, "/metrics?history=1");
      assert.equal(r.status, 200);
      const h = JSON.parse(r.text);
      return h.length >= 5 ? h : null;
    }, { timeoutMs: 10000, what: "5 samples at a 100 ms interval" });
    for (const s of samples) assert.deepEqual(Object.keys(s), METRIC_FIELDS);
    for (let i = 1; i < samples.length; i++) assert.ok(samples[i].ts >= samples[i - 1].ts);
  });

  it("logs: JSON lines, one per request with a request id, no bodies", async () => {
    const marker = `/envs-log-probe-${Date.now()}`;
    await req(envd, marker);
    const line = await waitFor(() => logLines(envd).find((l) => l.path === marker), { what: "the request log line" });
    assert.equal(line.method, "GET");
    assert.equal(line.status, 404);
    assert.equal(line.logger, "http");
    assert.match(line.request_id, /^[0-9a-f]{16}$/);
    assert.equal(typeof line.duration_ms, "number");
    assert.ok(line.timestamp && line.level);
    const ids = logLines(envd).filter((l) => l.logger === "http" && l.request_id).map((l) => l.request_id);
    assert.equal(new Set(ids).size, ids.length, "request ids are unique");
    assert.ok(!envd.stderr().includes("\\u003c2\\u003e") && !envd.stderr().includes('"<2>"'), "a body value reached the logs");
  });
});

describe("flags", () => {
  const run = (args) => spawnSync(envdBin(), args, { encoding: "utf8", timeout: 10000 });
  it("-version prints the version; --help lists the flags; unknown flags exit 2", () => {
    const v = run(["-version"]);
    assert.equal(v.status, 0);
    assert.equal(v.stdout, `${VERSION}\n`);
    const h = run(["--help"]);
    assert.equal(h.status, 0);
    for (const f of ["-port", "-version", "-commit", "-isnotfc", "-verbose", "-cgroup-root", "-no-cgroups", "--default-user", "--default-workdir", "--metrics-interval-ms", "--shutdown-timeout-ms"]) {
      assert.ok(h.stdout.includes(f), f);
    }
    const bad = run(["--no-such-flag"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /flag provided but not defined: -no-such-flag/);
    assert.equal(run(["--metrics-interval-ms", "abc"]).status, 2);
  });
});

describe("graceful shutdown", () => {
  it("SIGTERM ends open streams with unavailable and exits 0", async () => {
    const envd = await startEnvd({ extraArgs: ["--isnotfc", "--shutdown-timeout-ms", "60000"] });
    try {
      const ticks = JSON.stringify({ count: 1000, intervalMs: 1000 });
      // Connect streaming over HTTP/1.1 and gRPC (JSON codec) over h2c, both left open.
      const connectCall = h1Request(envd.port, { path: "/envdtest.Echo/Ticks", headers: { "content-type": "application/connect+json" }, body: envelope(0, ticks), timeoutMs: 15000 });
      const session = await h2Connect(envd.port);
      const grpcCall = h2Request(session, { path: "/envdtest.Echo/Ticks", headers: { "content-type": "application/grpc+json", te: "trailers" }, body: envelope(0, ticks), timeoutMs: 15000 });
      await waitFor(async () => {
        const r = await connectJson(envd.port, "/envdtest.Echo/Stats", {});
        return Number(r.json?.running ?? 0) >= 2;
      }, { what: "both streams running" });

      const started = Date.now();
      envd.child.kill("SIGTERM");
      const [c, g] = await Promise.all([connectCall, grpcCall]);
      assert.equal(c.status, 200);
      const parsed = parseConnectStream(c.body);
      assert.ok(parsed.messages.length >= 1);
      assert.deepEqual(parsed.end, { error: { code: "unavailable", message: "envd is shutting down" } });
      assert.equal(g.status, 200);
      assert.equal(String(g.trailers["grpc-status"]), "14");
      assert.equal(g.trailers["grpc-message"], "envd is shutting down");
      assert.ok(parseEnvelopes(g.body).length >= 1);
      session.close();

      // It exits by itself (no second signal, which would mean "exit now").
      const exit = await waitFor(() => envd.exitStatus(), { timeoutMs: 30000, what: "envd to exit after SIGTERM" });
      assert.deepEqual(exit, { code: 0, signal: null }, envd.tail());
      assert.ok(Date.now() - started < 30000, "shutdown waited for its timeout");  // vs --shutdown-timeout-ms 60000
      assert.doesNotMatch(envd.stderr(), /second signal/);
      // Nothing listens any more.
      await assert.rejects(fetch(envd.url("/health")));
      assert.match(envd.stderr(), /shutting down/);
    } finally {
      await envd.stop();
    }
  });

  it("SIGINT with nothing open exits 0 promptly", async () => {
    const envd = await startEnvd({ extraArgs: ["--isnotfc"], testServices: false });
    assert.equal((await req(envd, "/health")).status, 204);
    envd.child.kill("SIGINT");
    const exit = await waitFor(() => envd.exitStatus(), { timeoutMs: 10000, what: "envd to exit after SIGINT" });
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});
