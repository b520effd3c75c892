// The access matrix (contract §1.2 routing, §2 auth/signing/users, §6 exempt routes): with a token
// set, every REST route and every RPC method that envd serves — read from the daemon itself
// (`envd --print-routes`, the same registration code), so a route or method added later is covered
// without editing this file — refuses a missing or wrong token over HTTP/1.1 and h2c, and over
// Connect JSON, Connect binary, gRPC, gRPC-Web and gRPC-Web-text; only the contract's exempt set
// (GET /health, GET /files, POST /files, POST /init) gets through the gate. The right token passes
// the gate everywhere (shown with an unknown Basic user, which every route but /health then refuses
// before any handler runs). Signed /files URLs expire exactly (now-1 refused, now+2 served). The
// token, the wrong tokens and the signatures never reach the logs at debug level. Heads and bodies
// over the limits are refused with 431/413/resource_exhausted on every route and method. No
// client-controlled string (user, path, cwd, env, args) is ever interpreted by a shell.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  it, startEnvd, envdBin, envelope, parseEnvelopes, parseGrpcWebTrailers, h1Request, h1Bytes, h2Connect, h2Request,
  rawConnect, ERROR_CODES,
} from "./lib/envd.mjs";

const TOKEN = `tok-${randomBytes(12).toString("hex")}-Access`;
// Wrong tokens: near misses of the right one, and unrelated values. Each must be refused.
const WRONG_TOKENS = [
  "",
  `wrong-${randomBytes(8).toString("hex")}`,
  TOKEN.slice(0, -1),
  `${TOKEN}x`,
  TOKEN.toUpperCase(),
  `Bearer ${TOKEN}`,
  `${TOKEN},${TOKEN}`,
];
// Hundreds of requests per test: a budget for the ASan build (no assertion depends on time).
const MATRIX = { timeout: 120000 };
const GATE_BODY = '{"code":401,"message":"unauthorized access, please provide a valid access token or method signing if supported"}\n';
const BOGUS_USER = `nobody-${randomBytes(4).toString("hex")}`;
const basic = (user) => `Basic ${Buffer.from(`${user}:`).toString("base64")}`;

// Contract §1.2 / §2.1: what must be served, and the only method+path pairs the gate exempts.
const CONTRACT_EXEMPT = new Set(["GET /health", "GET /files", "POST /files", "POST /init"]);
const CONTRACT_ROUTES = ["GET /health", "GET /metrics", "GET /envs", "POST /init", "GET /files", "POST /files", "POST /files/compose"];
const CONTRACT_RPCS = [
  ...["List", "Connect", "Start", "Update", "StreamInput", "SendInput", "SendSignal", "CloseStdin"].map((m) => `/process.Process/${m}`),
  ...["Stat", "MakeDir", "Move", "ListDir", "Remove", "WatchDir", "CreateWatcher", "GetWatcherEvents", "RemoveWatcher"].map((m) => `/filesystem.Filesystem/${m}`),
];
const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
// Paths near the served ones (case, slashes, percent-encoding, unknown RPCs): never exempt.
const NEAR_MISSES = [
  "/nope", "/health/", "/HEALTH", "//health", "/%68ealth", "/health%2F", "/files/", "/files%2F", "/%66iles", "/Files",
  "/init/", "/%69nit", "/envs/", "/metrics/x", "/process.Process/Nope", "/process.Process/", "/process.Process/List/",
  "/nope.Nope/List", "/filesystem.Filesystem/stat", "/process.Process/list",
];

function routeTable(args) {
  const r = spawnSync(envdBin(), ["--print-routes", ...args], { encoding: "utf8" });
  assert.equal(r.status, 0, `envd --print-routes failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim());
}

const jsonOr = (buf) => { try { return JSON.parse(buf.toString("utf8")); } catch { return undefined; } };
const grpcName = (n) => (Number(n) === 0 ? "ok" : ERROR_CODES.find((c) => c.grpc === Number(n))?.name ?? `grpc-${n}`);

/** One REST request over HTTP/1.1 (fresh connection) or on an h2c session. */
async function rest(target, { method, path, headers = {}, body }) {
  if (target.h2) {
    const r = await h2Request(target.h2, { method, path, headers, body: method === "HEAD" ? undefined : body });
    return { status: Number(r.status), headers: r.headers, body: r.body };
  }
  return h1Request(target.port, { method, path, headers, body: method === "HEAD" ? undefined : body });
}

// ---------------------------------------------------------------------------------------------
// RPC protocols: how to frame an empty (or given) request and read the outcome of the call.

const isUnaryish = (kind) => kind === "unary";
const PROTOCOLS = [
  {
    name: "connect+json/h1", h2: false,
    contentType: (k) => (isUnaryish(k) ? "application/json" : "application/connect+json"),
    frame: (k, json) => (isUnaryish(k) ? Buffer.from(json) : envelope(0, json)),
    body: (k, msg) => msg.json,
    deadline: { "connect-timeout-ms": "400" },
  },
  {
    name: "connect+proto/h2c", h2: true,
    contentType: (k) => (isUnaryish(k) ? "application/proto" : "application/connect+proto"),
    frame: (k, bin) => (isUnaryish(k) ? Buffer.from(bin) : envelope(0, bin)),
    body: (k, msg) => msg.bin,
    deadline: { "connect-timeout-ms": "400" },
  },
  {
    name: "grpc/h2c", h2: true, headers: { te: "trailers" },
    contentType: () => "application/grpc",
    frame: (k, bin) => envelope(0, bin),
    body: (k, msg) => msg.bin,
    deadline: { "grpc-timeout": "400m" },
  },
  {
    name: "grpc-web/h1", h2: false,
    contentType: () => "application/grpc-web+proto",
    frame: (k, bin) => envelope(0, bin),
    body: (k, msg) => msg.bin,
    deadline: { "grpc-timeout": "400m" },
  },
  {
    name: "grpc-web-text/h1", h2: false, text: true,
    contentType: () => "application/grpc-web-text",
    frame: (k, bin) => Buffer.from(envelope(0, bin).toString("base64")),
    body: (k, msg) => msg.bin,
    deadline: { "grpc-timeout": "400m" },
  },
];

/** The outcome of an RPC in any protocol: { gate, status, code, message }. */
function rpcOutcome(proto, kind, r) {
  const out = { status: r.status, gate: r.status === 401 && r.body.toString("utf8") === GATE_BODY };
  if (out.gate) return out;
  const ct = String(r.headers["content-type"] ?? "");
  if (proto.name.startsWith("connect")) {
    if (isUnaryish(kind) || r.status !== 200) {
      const j = jsonOr(r.body);
      out.code = r.status === 200 ? "ok" : j?.code;
      out.message = j?.message;
      return out;
    }
    const envs = parseEnvelopes(r.body);
    const end = envs.find((e) => e.flags & 0x02);
    const j = end ? jsonOr(end.data) : undefined;
    out.code = j?.error ? j.error.code : end ? "ok" : "no-end-frame";
    out.message = j?.error?.message;
    return out;
  }
  // gRPC and gRPC-Web: trailers-only answers carry grpc-status in the headers.
  let status = r.headers["grpc-status"];
  let message = r.headers["grpc-message"];
  if (status === undefined && proto.name === "grpc/h2c") {
    status = r.trailers?.["grpc-status"];
    message = r.trailers?.["grpc-message"];
  }
  if (status === undefined && /grpc-web/.test(ct)) {
    // gRPC-Web-text: each message is base64 on its own, padding included.
    const body = proto.text ? Buffer.concat((r.body.toString("latin1").match(/[^=]+=*/g) ?? []).map((seg) => Buffer.from(seg, "base64"))) : r.body;
    const tr = parseEnvelopes(body).find((e) => e.flags & 0x80);
    if (tr) {
      const t = parseGrpcWebTrailers(tr.data);
      status = t["grpc-status"];
      message = t["grpc-message"];
    }
  }
  out.code = status === undefined ? `http-${r.status}` : grpcName(status);
  out.message = message === undefined ? undefined : decodeURIComponent(message);
  return out;
}

async function rpcCall(target, proto, m, { headers = {}, msg = { json: "{}", bin: Buffer.alloc(0) } } = {}) {
  const h = { "content-type": proto.contentType(m.kind), ...(proto.headers ?? {}), ...headers };
  const body = proto.frame(m.kind, proto.body(m.kind, msg));
  const r = proto.h2
    ? await h2Request(target.h2, { method: "POST", path: m.path, headers: h, body })
    : await h1Request(target.port, { method: "POST", path: m.path, headers: h, body });
  const res = proto.h2 ? { status: Number(r.status), headers: r.headers, body: r.body, trailers: r.trailers } : r;
  return rpcOutcome(proto, m.kind, res);
}

// ---------------------------------------------------------------------------------------------

const cgroupArgs = () => {
  const line = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => / - cgroup2 /.test(l));
  return line ? ["-cgroup-root", line.split(" ")[4]] : ["-no-cgroups"];
};

describe("access matrix (token set, --log-level debug)", () => {
  let envd, h2, table, work;
  const sent = new Set(); // every secret-ish string sent, checked against the logs at the end
  const counts = { rest: 0, restExtra: 0, rpc: 0, signed: 0 };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "envd-access-"));
    // An empty path in a request ("" from an empty message) resolves to the default workdir: a
    // scratch directory, so calling every RPC with an empty message touches nothing else.
    const args = ["--isnotfc", "--log-level", "debug", "--default-workdir", join(work, "wd"), ...cgroupArgs()];
    mkdirSync(join(work, "wd"));
    table = routeTable(["--test-services", ...args]);
    envd = await startEnvd({ extraArgs: args });
    h2 = await h2Connect(envd.port);
    h2.on("error", () => {});
    const init = await h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json" }, body: JSON.stringify({ accessToken: TOKEN }) });
    assert.equal(init.status, 204, init.body.toString());
    sent.add(TOKEN);
    for (const w of WRONG_TOKENS) if (w.length > 3) sent.add(w);
  });
  after(async () => {
    h2?.close();
    const alive = envd?.alive();
    const exit = await envd?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
    assert.ok(alive !== false, `envd died during the tests:\n${envd?.tail()}`);
    assert.equal(exit?.code, 0, `envd exit ${JSON.stringify(exit)}\n${envd?.tail()}`);
    console.log(`access matrix: ${counts.rest} REST requests on served routes, ${counts.restExtra} on other methods and near-miss paths, ${counts.rpc} RPC calls, ${counts.signed} signed-URL requests`);
  });

  const targets = () => [{ name: "h1", port: envd.port }, { name: "h2c", port: envd.port, h2 }];

  it("the route table covers the contract, and its exempt set is exactly the contract's", () => {
    const routes = table.routes.map((r) => `${r.method} ${r.path}`);
    for (const r of CONTRACT_ROUTES) assert.ok(routes.includes(r), `route ${r} missing from --print-routes: ${routes}`);
    const rpcs = table.rpc.map((m) => m.path);
    for (const p of CONTRACT_RPCS) assert.ok(rpcs.includes(p), `RPC ${p} missing from --print-routes`);
    for (const r of table.routes) {
      assert.equal(r.token_exempt, CONTRACT_EXEMPT.has(`${r.method} ${r.path}`), `${r.method} ${r.path}: token_exempt ${r.token_exempt}`);
    }
    for (const m of table.rpc) {
      assert.ok(["unary", "server_stream", "client_stream", "bidi_stream"].includes(m.kind), `${m.path}: kind ${m.kind}`);
      assert.equal(m.path, `/${m.service}/${m.method}`);
    }
  });

  /** What a route answers when the gate was not passed (no token, or `wrong`). */
  function expectRefused(route, r, wrong, what) {
    const key = `${route.method} ${route.path}`;
    const text = r.body.toString("utf8");
    if (key === "GET /health") {
      assert.equal(r.status, 204, `${what}: ${text}`);
    } else if (key === "GET /files" || key === "POST /files") {
      // Exempt at the gate; the handler checks the header or a signature itself (§2.2). An empty
      // header counts as absent.
      assert.equal(r.status, 401, what);
      const msg = wrong ? "access token present in header but does not match" : "missing signature query parameter";
      assert.deepEqual(JSON.parse(text), { code: 401, message: msg }, what);
    } else if (key === "POST /init") {
      // Self-authenticated: an empty body would clear the token, which needs proof (§6.4).
      assert.equal(r.status, 401, what);
      assert.equal(text.trim(), "access token reset not authorized", what);
    } else {
      assert.equal(r.status, 401, `${what}: ${text}`);
      assert.equal(text, route.method === "HEAD" ? "" : GATE_BODY, what);
    }
  }

  const restBody = (route) => (route.method === "GET" || route.method === "HEAD" ? undefined : "{}");
  const restHeaders = (route, extra = {}) => (route.method === "GET" || route.method === "HEAD" ? extra : { "content-type": "application/json", ...extra });

  it("every served route × {no token, 7 wrong tokens} × {HTTP/1.1, h2c}: 401 from the gate, except the exempt set", MATRIX, async () => {
    for (const t of targets()) {
      for (const route of table.routes) {
        const what0 = `${t.name} ${route.method} ${route.path}`;
        const none = await rest(t, { method: route.method, path: route.path, headers: restHeaders(route), body: restBody(route) });
        counts.rest++;
        expectRefused(route, none, false, `${what0} without a token`);
        for (const w of WRONG_TOKENS) {
          const r = await rest(t, { method: route.method, path: route.path, headers: restHeaders(route, { "x-access-token": w }), body: restBody(route) });
          counts.rest++;
          expectRefused(route, r, w !== "", `${what0} with wrong token ${JSON.stringify(w)}`);
        }
      }
    }
  });

  it("every served route with the right token passes the gate: an unknown Basic user is then refused (invalid username), /health still 204", MATRIX, async () => {
    for (const t of targets()) {
      for (const route of table.routes) {
        const what = `${t.name} ${route.method} ${route.path}`;
        const r = await rest(t, {
          method: route.method, path: route.path, body: restBody(route),
          headers: restHeaders(route, { "x-access-token": TOKEN, authorization: basic(BOGUS_USER) }),
        });
        counts.rest++;
        if (route.method === "GET" && route.path === "/health") {
          assert.equal(r.status, 204, what);
          continue;
        }
        assert.equal(r.status, 401, `${what}: ${r.body}`);
        assert.deepEqual(JSON.parse(r.body.toString()), { code: "unauthenticated", message: `invalid username: '${BOGUS_USER}'` }, what);
      }
    }
  });

  it("the right token and the default user: the handlers of the safe routes run (200/204/400, never 401)", MATRIX, async () => {
    const file = join(work, "wd", "hello.txt");
    writeFileSync(file, "hello access\n");
    const safe = {
      "GET /health": { expect: 204 },
      "GET /envs": { expect: 200 },
      "GET /metrics": { expect: 200 },
      "POST /init": { expect: 204, body: JSON.stringify({ accessToken: TOKEN }) },
      "GET /files": { expect: 200, query: `?path=${encodeURIComponent(file)}` },
      "POST /files": { expect: 200, query: `?path=${encodeURIComponent(join(work, "wd", "up.txt"))}`, ct: "application/octet-stream", body: "uploaded" },
      "POST /files/compose": { expect: 400, body: "{}" },
      "GET /__test/scope-stats": { expect: 200 },
    };
    let ran = 0;
    for (const t of targets()) {
      for (const route of table.routes) {
        const s = safe[`${route.method} ${route.path}`];
        if (!s) continue; // the unknown-user case above showed the gate lets it through
        const headers = { "x-access-token": TOKEN };
        if (s.body !== undefined) headers["content-type"] = s.ct ?? "application/json";
        const r = await rest(t, { method: route.method, path: route.path + (s.query ?? ""), headers, body: s.body });
        counts.rest++;
        ran++;
        assert.equal(r.status, s.expect, `${t.name} ${route.method} ${route.path}: ${r.body}`);
      }
    }
    assert.ok(ran >= 14, `only ${ran} safe routes ran`);
    assert.equal(readFileSync(join(work, "wd", "up.txt"), "utf8"), "uploaded");
  });

  it("every other HTTP method on a served path: 401 without a token (the gate comes before 405), 405 with it", MATRIX, async () => {
    const byPath = new Map();
    for (const r of table.routes) byPath.set(r.path, [...(byPath.get(r.path) ?? []), r.method]);
    for (const t of targets()) {
      for (const [path, methods] of byPath) {
        for (const method of HTTP_METHODS.filter((m) => !methods.includes(m))) {
          const what = `${t.name} ${method} ${path}`;
          const body = method === "GET" || method === "HEAD" ? undefined : "{}";
          const none = await rest(t, { method, path, body });
          assert.equal(none.status, 401, what);
          // A HEAD answer has no body (bytes after its head would be read as the next response).
          assert.equal(none.body.toString(), method === "HEAD" ? "" : GATE_BODY, what);
          const wrong = await rest(t, { method, path, body, headers: { "x-access-token": WRONG_TOKENS[1] } });
          assert.equal(wrong.status, 401, what);
          const right = await rest(t, { method, path, body, headers: { "x-access-token": TOKEN } });
          assert.equal(right.status, 405, `${what} with the token`);
          counts.restExtra += 3;
        }
      }
    }
  });

  it("near-miss and unknown paths (case, slashes, percent-encoding, unknown RPCs): 401 without a token, never served as exempt", MATRIX, async () => {
    for (const t of targets()) {
      for (const path of NEAR_MISSES) {
        for (const method of ["GET", "POST"]) {
          const what = `${t.name} ${method} ${path}`;
          const body = method === "POST" ? "{}" : undefined;
          const headers = method === "POST" ? { "content-type": "application/json" } : {};
          const none = await rest(t, { method, path, body, headers });
          assert.equal(none.status, 401, `${what}: ${none.body}`);
          assert.equal(none.body.toString(), GATE_BODY, what);
          const wrong = await rest(t, { method, path, body, headers: { ...headers, "x-access-token": WRONG_TOKENS[2] } });
          assert.equal(wrong.status, 401, what);
          const right = await rest(t, { method, path, body, headers: { ...headers, "x-access-token": TOKEN } });
          assert.notEqual(right.status, 401, `${what} with the token: ${right.body}`);
          assert.ok(right.status >= 400 && right.status < 500, `${what} with the token: ${right.status}`);
          counts.restExtra += 3;
        }
      }
    }
  });

  it("CORS: a preflight is answered 204 before the gate on every path; the actual request still needs the token", MATRIX, async () => {
    const paths = [...new Set([...table.routes.map((r) => r.path), ...table.rpc.map((m) => m.path)])];
    for (const path of paths) {
      const pre = await h1Request(envd.port, {
        method: "OPTIONS", path,
        headers: { origin: "https://example.com", "access-control-request-method": "POST", "access-control-request-headers": "x-access-token" },
      });
      assert.equal(pre.status, 204, path);
      const actual = await h1Request(envd.port, { method: "POST", path, headers: { origin: "https://example.com", "content-type": "application/json" }, body: "{}" });
      if (path === "/files" || path === "/init") continue; // exempt (their own checks)
      assert.equal(actual.status, 401, path);
      assert.equal(actual.headers["access-control-allow-origin"], "*", path);
      counts.restExtra += 2;
    }
  });

  it("every RPC × {Connect JSON, Connect binary, gRPC, gRPC-Web, gRPC-Web-text} × {no token, 7 wrong tokens}: 401 from the gate, plain JSON", MATRIX, async () => {
    for (const m of table.rpc) {
      for (const proto of PROTOCOLS) {
        const target = { port: envd.port, h2 };
        const none = await rpcCall(target, proto, m);
        assert.ok(none.gate, `${proto.name} ${m.path} without a token: ${JSON.stringify(none)}`);
        for (const w of WRONG_TOKENS) {
          const r = await rpcCall(target, proto, m, { headers: { "x-access-token": w } });
          assert.ok(r.gate, `${proto.name} ${m.path} with wrong token ${JSON.stringify(w)}: ${JSON.stringify(r)}`);
        }
        counts.rpc += 1 + WRONG_TOKENS.length;
      }
    }
  });

  it("every RPC × protocol with the right token and an unknown Basic user: unauthenticated 'invalid username' in the protocol's shape (no handler runs)", MATRIX, async () => {
    for (const m of table.rpc) {
      for (const proto of PROTOCOLS) {
        const r = await rpcCall({ port: envd.port, h2 }, proto, m, { headers: { "x-access-token": TOKEN, authorization: basic(BOGUS_USER) } });
        counts.rpc++;
        const what = `${proto.name} ${m.path}: ${JSON.stringify(r)}`;
        assert.ok(!r.gate, what);
        assert.equal(r.code, "unauthenticated", what);
        assert.equal(r.message, `invalid username: '${BOGUS_USER}'`, what);
        // Connect unary (and HTTP-level) errors are HTTP 401; streams and gRPC say it in-band.
        if (proto.name.startsWith("connect") && m.kind === "unary") assert.equal(r.status, 401, what);
      }
    }
  });

  it("every RPC × protocol with the right token and the default user (an empty request, short deadline): served, never unauthenticated", MATRIX, async () => {
    for (const m of table.rpc) {
      for (const proto of PROTOCOLS) {
        const r = await rpcCall({ port: envd.port, h2 }, proto, m, { headers: { "x-access-token": TOKEN, ...proto.deadline } });
        counts.rpc++;
        const what = `${proto.name} ${m.path}: ${JSON.stringify(r)}`;
        assert.ok(!r.gate, what);
        assert.notEqual(r.code, "unauthenticated", what);
        assert.ok(r.code === "ok" || ERROR_CODES.some((c) => c.name === r.code), what);
      }
    }
    // Remove("") removed the default workdir (an empty path resolves to it): as asked.
    mkdirSync(join(work, "wd"), { recursive: true });
  });

  // ------------------------------------------------------------------------------------------
  // Signed URLs (§2.2): exact expiry, and every way a signature can be wrong.

  const signature = (path, op, user, token, exp) =>
    "v1_" + createHash("sha256").update(exp === undefined ? `${path}:${op}:${user}:${token}` : `${path}:${op}:${user}:${token}:${exp}`, "utf8").digest("base64").replace(/=+$/, "");
  function signedPath({ path, user = "", op, token = TOKEN, exp, urlExp = exp, sig }) {
    const u = new URLSearchParams();
    if (path !== undefined) u.set("path", path);
    if (user) u.set("username", user);
    const s = sig ?? signature(path ?? "", op, user, token, exp);
    u.set("signature", s);
    if (urlExp !== undefined) u.set("signature_expiration", String(urlExp));
    return { url: `/files?${u}`, sig: s };
  }

  it("signed /files URLs over HTTP/1.1 and h2c: valid, now+2 and far-future served; now-1 and older expired; tampered ones refused", MATRIX, async () => {
    const file = join(work, "wd", "signed.txt");
    writeFileSync(file, "signed content");
    for (const t of targets()) {
      for (const method of ["GET", "POST"]) {
        const op = method === "GET" ? "read" : "write";
        const other = method === "GET" ? "write" : "read";
        const target = method === "GET" ? file : join(work, "wd", `up-${t.name}.txt`);
        const send = async ({ url, sig }, headers = {}) => {
          sent.add(sig);
          counts.signed++;
          const body = method === "POST" ? `payload ${t.name}` : undefined;
          const h = method === "POST" ? { "content-type": "application/octet-stream", ...headers } : headers;
          return rest(t, { method, path: url, headers: h, body });
        };
        const ok = async (spec, what) => {
          const r = await send(signedPath({ path: target, op, ...spec }));
          assert.equal(r.status, 200, `${t.name} ${method} ${what}: ${r.body}`);
          if (method === "GET") assert.equal(r.body.toString(), "signed content");
        };
        const refused = async (spec, message, what, headers) => {
          const r = await send(signedPath({ path: target, op, ...spec }), headers);
          assert.equal(r.status, 401, `${t.name} ${method} ${what}: ${r.body}`);
          assert.deepEqual(JSON.parse(r.body.toString()), { code: 401, message }, `${t.name} ${method} ${what}`);
        };
        // The server's clock may tick between our `now` and its check: now+2 stays valid across one
        // second boundary, now-1 is expired whatever happens.
        const now = Math.floor(Date.now() / 1000);
        await ok({}, "no expiration");
        await ok({ exp: now + 2 }, "expiring at now+2");
        await ok({ exp: now + 3600 }, "expiring in an hour");
        await ok({ user: "root", exp: now + 60 }, "with username root");
        await refused({ exp: now - 1 }, "signature is already expired", "expired at now-1");
        await refused({ exp: now - 3600 }, "signature is already expired", "expired an hour ago");
        await refused({ exp: 1 }, "signature is already expired", "expired in 1970");
        await refused({ exp: now + 60, urlExp: now + 3600 }, "invalid signature", "expiration moved after signing");
        await refused({ exp: now - 1, urlExp: now + 3600 }, "invalid signature", "expired signature with a moved expiration");
        await refused({ exp: undefined, urlExp: now + 60 }, "invalid signature", "expiration added after signing");
        await refused({ op: other }, "invalid signature", `signed for ${other}`);
        await refused({ token: WRONG_TOKENS[1] }, "invalid signature", "signed with a wrong token");
        await refused({ token: TOKEN.slice(0, -1) }, "invalid signature", "signed with a prefix of the token");
        await refused({ sig: signature(target + "x", op, "", TOKEN) }, "invalid signature", "signed for another path");
        await refused({ sig: signature(target, op, "root", TOKEN) }, "invalid signature", "signed for another user");
        await refused({ sig: signature(target, op, "", TOKEN).slice(3) }, "invalid signature", "without the v1_ prefix");
        await refused({ sig: "" }, "invalid signature", "empty signature");
        await refused({ sig: `v1_${createHash("sha256").update(TOKEN).digest("base64")}` }, "invalid signature", "hash of the bare token");
        // A header next to a signature must be the token (§2.2 step 2).
        await refused({}, "access token present in header but does not match", "valid signature, wrong header", { "x-access-token": WRONG_TOKENS[1] });
      }
    }
    assert.equal(readFileSync(join(work, "wd", "up-h1.txt"), "utf8"), "payload h1");
  });

  it("an upload with an expired or wrong signature writes nothing", MATRIX, async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const spec of [{ exp: now - 1 }, { token: WRONG_TOKENS[1] }]) {
      const target = join(work, "wd", `never-${randomBytes(3).toString("hex")}.txt`);
      const { url, sig } = signedPath({ path: target, op: "write", ...spec });
      sent.add(sig);
      const r = await h1Request(envd.port, { method: "POST", path: url, headers: { "content-type": "application/octet-stream" }, body: "x" });
      assert.equal(r.status, 401);
      assert.ok(!existsSync(target), `${target} was written`);
    }
  });

  // ------------------------------------------------------------------------------------------

  it("the logs (debug level, everything above) never contain the token, a wrong token or a signature", MATRIX, async () => {
    // /init paths that log: a body with ignored fields, a type error next to the token, a wrong
    // token in the body and in the header.
    const initReq = (body, headers = {}) => h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json", ...headers }, body });
    assert.equal((await initReq(JSON.stringify({ accessToken: TOKEN, hyperloopIP: "10.0.0.1", caBundle: "x", lifecycleID: "l" }))).status, 204);
    assert.equal((await initReq(`{"accessToken":"${TOKEN}","envVars":5}`)).status, 400);
    assert.equal((await initReq(`{"accessToken":"${TOKEN}",`)).status, 400);
    assert.equal((await initReq(JSON.stringify({ accessToken: WRONG_TOKENS[1] }))).status, 401);
    assert.equal((await initReq(JSON.stringify({ accessToken: WRONG_TOKENS[3] }), { "x-access-token": WRONG_TOKENS[4] })).status, 401);
    const log = envd.stderr() + envd.stdout();
    assert.match(log, /"level":"debug"/, "the daemon does not log at debug level");
    assert.match(log, /"path":"\/files"/, "request lines are missing from the log");
    const b64 = Buffer.from(TOKEN).toString("base64").replace(/=+$/, "");
    for (const s of [...sent, b64, TOKEN.toUpperCase()].filter((x) => x.length >= 8)) {
      assert.ok(!log.includes(s), `the log contains ${JSON.stringify(s)}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Limits on every route and method (heads: 431 before the gate; RPC messages: resource_exhausted
// after it; REST bodies: 413 where a route reads its body whole).

// POST routes that read their body whole, with the limit given on the command line below
// (--max-init-body-bytes, --max-compose-body-bytes); POST /files streams its body ("no size limit",
// §6.6).
const BODY_LIMITS = { "/init": 65536, "/files/compose": 4096 };

describe("limits on every route and method (--max-header-bytes 8192, --max-header-count 64, --max-message-bytes 1024, body limits)", () => {
  let envd, h2, table;
  before(async () => {
    const args = ["--isnotfc", "--max-header-bytes", "8192", "--max-header-count", "64", "--max-message-bytes", "1024",
      "--max-init-body-bytes", String(BODY_LIMITS["/init"]), "--max-compose-body-bytes", String(BODY_LIMITS["/files/compose"]), ...cgroupArgs()];
    table = routeTable(["--test-services", ...args]);
    envd = await startEnvd({ extraArgs: args });
    h2 = await h2Connect(envd.port);
    h2.on("error", () => {});
    const init = await h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json" }, body: JSON.stringify({ accessToken: TOKEN }) });
    assert.equal(init.status, 204);
  });
  after(async () => {
    h2?.close();
    const alive = envd?.alive();
    await envd?.stop();
    assert.ok(alive !== false, `envd died:\n${envd?.tail()}`);
  });

  async function h1Status(bytes) {
    const c = await rawConnect(envd.port);
    c.sock.on("error", () => {});
    c.sock.write(bytes);
    await c.until((s) => /^HTTP\/1\.1 \d{3}/.test(s.data.toString("latin1")), 15000, "a status line");
    c.sock.destroy();
    return Number(c.data.toString("latin1").slice(9, 12));
  }

  it("a head over --max-header-bytes or --max-header-count: 431 on every route and RPC path, with or without the token (HTTP/1.1 and h2c)", MATRIX, async () => {
    const entries = [...table.routes.map((r) => [r.method, r.path]), ...table.rpc.map((m) => ["POST", m.path])];
    for (const [method, path] of entries) {
      for (const token of [undefined, TOKEN]) {
        const auth = token ? { "x-access-token": token } : {};
        const big = await h1Status(h1Bytes({ method, path, headers: { ...auth, "x-pad": "a".repeat(9000) } }));
        assert.equal(big, 431, `${method} ${path} (h1, 9000-byte field)`);
        const many = {};
        for (let i = 0; i < 70; i++) many[`x-f${i}`] = "v";
        const count = await h1Status(h1Bytes({ method, path, headers: { ...auth, ...many } }));
        assert.equal(count, 431, `${method} ${path} (h1, 70 fields)`);
        const h2big = await h2Request(h2, { method, path, headers: { ...auth, "x-pad": "a".repeat(9000) } });
        assert.equal(Number(h2big.status), 431, `${method} ${path} (h2c, 9000-byte field)`);
        const h2many = await h2Request(h2, { method, path, headers: { ...auth, ...many } });
        assert.equal(Number(h2many.status), 431, `${method} ${path} (h2c, 70 fields)`);
      }
    }
  });

  it("every RPC × protocol: a request message over --max-message-bytes → resource_exhausted (with the token; 401 without)", MATRIX, async () => {
    // Valid messages of any request type: an unknown field holding 2,000 bytes.
    const pad = "x".repeat(2000);
    const bin = Buffer.concat([Buffer.from([0xfa, 0xff, 0x07 /* field 16383, wire type 2 */]), Buffer.from([0xd0, 0x0f /* 2000 */]), Buffer.from(pad)]);
    const msg = { json: JSON.stringify({ zzPadding: pad }), bin };
    for (const m of table.rpc) {
      // A method without a handler answers unimplemented before it reads its request.
      const plain = await rpcCall({ port: envd.port, h2 }, PROTOCOLS[0], m, { headers: { "x-access-token": TOKEN, ...PROTOCOLS[0].deadline } });
      const unimplemented = plain.code === "unimplemented" && /is not implemented$/.test(plain.message ?? "");
      for (const proto of PROTOCOLS) {
        const what = `${proto.name} ${m.path}`;
        const none = await rpcCall({ port: envd.port, h2 }, proto, m, { msg });
        assert.ok(none.gate, `${what} without a token: ${JSON.stringify(none)}`);
        const r = await rpcCall({ port: envd.port, h2 }, proto, m, { msg, headers: { "x-access-token": TOKEN, ...proto.deadline } });
        if (unimplemented) {
          assert.equal(r.code, "unimplemented", `${what}: ${JSON.stringify(r)}`);
        } else if (m.kind === "unary" || m.kind === "server_stream") {
          assert.equal(r.code, "resource_exhausted", `${what}: ${JSON.stringify(r)}`);
        } else {
          // A client stream's handler reads its messages itself and may wrap the error, as
          // StreamInput does (contract §4.6: unknown "error streaming input: …"); the limit shows.
          assert.ok(r.code === "resource_exhausted" || /larger than configured max 1024/.test(r.message ?? ""), `${what}: ${JSON.stringify(r)}`);
        }
        if (!unimplemented && proto.name.startsWith("connect") && m.kind === "unary") assert.equal(r.status, 429, what);
      }
    }
  });

  it("bodies read whole answer 413 past their limit (--max-init-body-bytes, --max-compose-body-bytes); every other POST route refuses an oversize body without the token before reading it", MATRIX, async () => {
    const posts = table.routes.filter((r) => r.method === "POST").map((r) => r.path);
    for (const path of Object.keys(BODY_LIMITS)) assert.ok(posts.includes(path), `POST ${path} missing from --print-routes`);
    const big = Buffer.alloc(Math.max(...Object.values(BODY_LIMITS)) + 1, 0x20);
    for (const path of posts) {
      const limit = BODY_LIMITS[path];
      if (limit !== undefined) {
        const body = Buffer.alloc(limit + 1, 0x20);
        const r = await h1Request(envd.port, { method: "POST", path, headers: { "content-type": "application/json", "x-access-token": TOKEN }, body });
        assert.equal(r.status, 413, `POST ${path} with ${limit + 1} bytes: ${r.body}`);
        // (An /init without accessToken would clear the token: it keeps it.)
        const small = path === "/init" ? JSON.stringify({ accessToken: TOKEN }) : "{}";
        const under = await h1Request(envd.port, { method: "POST", path, headers: { "content-type": "application/json", "x-access-token": TOKEN }, body: small });
        assert.notEqual(under.status, 413, `POST ${path} with {}`);
      }
      // Routes that stream their body (POST /files: "no size limit", §6.6) or do not read one are
      // not sent a body with the token here (a handler would run: /freeze, uploads). Without the
      // token a non-exempt route refuses before reading anything.
      if (CONTRACT_EXEMPT.has(`POST ${path}`)) continue;
      const none = await h1Request(envd.port, { method: "POST", path, headers: { "content-type": "application/json" }, body: big });
      assert.equal(none.status, 401, `POST ${path} without a token`);
      assert.equal(none.body.toString(), GATE_BODY);
    }
    // The token is still in force.
    assert.equal((await h1Request(envd.port, { method: "GET", path: "/envs" })).status, 401);
  });
});

// ---------------------------------------------------------------------------------------------
// No shell sees a client's string. envd execs the command and arguments it was asked to run
// (the SDKs ask for `/bin/bash -l -c <cmd>`: that shell is the client's own request); user names,
// paths, working directories, environment names and values reach syscalls as bytes. Each hostile
// string below would create a marker file if any shell interpreted it.

describe("client strings never reach a shell (users, paths, cwd, env, args)", () => {
  let envd, dir;
  const markers = [];
  // Shell syntax that runs `touch <marker>`: substitution, separators, pipes, newlines.
  const hostile = (tag) => {
    const m = join(dir, `pwned-${tag}`);
    markers.push(m);
    return [`$(touch ${m})`, `\`touch ${m}\``, `;touch ${m};`, `|touch ${m}`, `&&touch ${m}`, `\ntouch ${m}\n`, `'$(touch ${m})'`];
  };
  const auth = { "x-access-token": TOKEN };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "envd-shell-"));
    envd = await startEnvd({ extraArgs: ["--isnotfc", "--default-workdir", dir, ...cgroupArgs()] });
    const init = await h1Request(envd.port, { path: "/init", headers: { "content-type": "application/json" }, body: JSON.stringify({ accessToken: TOKEN }) });
    assert.equal(init.status, 204);
  });
  after(async () => {
    const alive = envd?.alive();
    await envd?.stop();
    const found = markers.filter((m) => existsSync(m));
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.ok(alive !== false, `envd died:\n${envd?.tail()}`);
    assert.deepEqual(found, [], "a shell ran a client's string");
  });

  const noMarkers = () => assert.deepEqual(markers.filter((m) => existsSync(m)), []);

  /** Runs a process over Connect JSON: { stdout, stderr, exitCode, error }. */
  async function run(proc, headers = {}) {
    const body = envelope(0, JSON.stringify({ process: proc }));
    const r = await h1Request(envd.port, { path: "/process.Process/Start", headers: { "content-type": "application/connect+json", ...auth, ...headers }, body });
    assert.equal(r.status, 200, r.body.toString());
    const out = { stdout: "", stderr: "", exitCode: undefined, error: undefined };
    for (const e of parseEnvelopes(r.body)) {
      const j = JSON.parse(e.data.toString());
      if (e.flags & 0x02) { out.error = j.error; continue; }
      const ev = j.event ?? {};
      if (ev.data?.stdout) out.stdout += Buffer.from(ev.data.stdout, "base64").toString();
      if (ev.data?.stderr) out.stderr += Buffer.from(ev.data.stderr, "base64").toString();
      if (ev.end) out.exitCode = ev.end.exitCode ?? 0;
    }
    return out;
  }
  const rpc = (path, msg, headers = {}) =>
    h1Request(envd.port, { path, headers: { "content-type": "application/json", ...auth, ...headers }, body: JSON.stringify(msg) })
      .then((r) => ({ status: r.status, json: jsonOr(r.body) }));

  it("Start: arguments reach the command verbatim (printf '%s\\n' prints each one back)", MATRIX, async () => {
    const args = hostile("args");
    const r = await run({ cmd: "/usr/bin/printf", args: ["%s\\n", ...args] });
    assert.equal(r.exitCode, 0, JSON.stringify(r));
    assert.equal(r.stdout, args.map((a) => `${a}\n`).join(""));
    noMarkers();
  });

  it("Start: the command name itself is exec'd, not parsed (a hostile name is just not found)", MATRIX, async () => {
    for (const cmd of hostile("cmd")) {
      const r = await run({ cmd });
      assert.equal(r.exitCode, 127, `${JSON.stringify(cmd)}: ${JSON.stringify(r)}`);
    }
    noMarkers();
  });

  it("Start: environment names and values are passed as bytes (env prints them back)", MATRIX, async () => {
    const values = hostile("envval");
    const envs = {};
    values.forEach((v, i) => { envs[`HOSTILE_${i}`] = v; });
    // Names with shell syntax (no '=' and no NUL: what execve allows).
    for (const [i, v] of hostile("envname").entries()) envs[`N${i}${v.replace(/=/g, "")}`] = "x";
    const r = await run({ cmd: "/usr/bin/env", envs });
    assert.equal(r.exitCode, 0, JSON.stringify(r));
    const lines = r.stdout.split("\n");
    for (const [k, v] of Object.entries(envs)) {
      if (k.includes("\n") || v.includes("\n")) continue; // env's output is line based; the marker check covers them
      assert.ok(lines.includes(`${k}=${v}`), `${k}=${v} missing from env's output`);
    }
    noMarkers();
  });

  it("Start: a working directory with shell syntax in its name is entered as is (pwd prints it)", MATRIX, async () => {
    for (const name of hostile("cwd")) {
      const cwd = join(dir, name.replace(/\//g, "_"));
      mkdirSync(cwd, { recursive: true });
      const r = await run({ cmd: "/bin/pwd", cwd });
      assert.equal(r.exitCode, 0, JSON.stringify(r));
      assert.equal(r.stdout, `${cwd}\n`);
    }
    // A cwd that does not exist: invalid_argument, nothing runs.
    const r = await run({ cmd: "/bin/true", cwd: join(dir, hostile("cwd2")[0]) });
    assert.equal(r.error?.code, "invalid_argument", JSON.stringify(r));
    noMarkers();
  });

  it("Start: a script without #! is run by /bin/sh as a file (execvp's fallback), its hostile name never parsed", MATRIX, async () => {
    // Relative marker: a shell parsing the name would touch it in the cwd.
    const name = join(dir, "s;touch pwned-script;x");
    markers.push(join(dir, "pwned-script"));
    writeFileSync(name, "echo from-script\n", { mode: 0o755 });
    const r = await run({ cmd: name, cwd: dir });
    assert.equal(r.stdout, "from-script\n", JSON.stringify(r));
    noMarkers();
  });

  it("user names (Basic header, /files username): unknown users are refused, nothing runs", MATRIX, async () => {
    for (const user of hostile("user")) {
      const r = await rpc("/process.Process/List", {}, { authorization: basic(user) });
      assert.equal(r.status, 401);
      assert.equal(r.json.code, "unauthenticated");
      const q = new URLSearchParams({ path: join(dir, "x"), username: user });
      const f = await h1Request(envd.port, { method: "GET", path: `/files?${q}`, headers: auth });
      assert.equal(f.status, 401, f.body.toString());
    }
    noMarkers();
  });

  it("filesystem paths (MakeDir, Stat, ListDir, Move, Remove, /files up- and download, compose, ~user): literal names", MATRIX, async () => {
    for (const [i, h] of hostile("fs").entries()) {
      const name = h.replace(/\//g, "_");
      const p = join(dir, `d${i}${name}`);
      assert.equal((await rpc("/filesystem.Filesystem/MakeDir", { path: p })).status, 200);
      const st = await rpc("/filesystem.Filesystem/Stat", { path: p });
      assert.equal(st.json.entry.path, p);
      const file = join(p, `f${name}`);
      const up = await h1Request(envd.port, { method: "POST", path: `/files?${new URLSearchParams({ path: file })}`, headers: { ...auth, "content-type": "application/octet-stream" }, body: "data" });
      assert.equal(up.status, 200, up.body.toString());
      const down = await h1Request(envd.port, { method: "GET", path: `/files?${new URLSearchParams({ path: file })}`, headers: auth });
      assert.equal(down.body.toString(), "data");
      const ls = await rpc("/filesystem.Filesystem/ListDir", { path: p, depth: 1 });
      assert.deepEqual(ls.json.entries.map((e) => e.name), [`f${name}`]);
      const composed = join(p, `c${name}`);
      const c = await h1Request(envd.port, { method: "POST", path: "/files/compose", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ source_paths: [file], destination: composed }) });
      assert.equal(c.status, 200, c.body.toString());
      const moved = join(dir, `m${i}${name}`);
      assert.equal((await rpc("/filesystem.Filesystem/Move", { source: p, destination: moved })).status, 200);
      assert.ok(existsSync(join(moved, `c${name}`)));
      assert.equal((await rpc("/filesystem.Filesystem/Remove", { path: moved })).status, 200);
      assert.ok(!existsSync(moved));
      // ~name is refused (contract §3.2), whatever follows.
      const tilde = await rpc("/filesystem.Filesystem/Stat", { path: `~${h}` });
      assert.equal(tilde.json?.code, "invalid_argument", JSON.stringify(tilde));
    }
    noMarkers();
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith("pwned")), []);
  });
});
