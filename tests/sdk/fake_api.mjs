// A tiny stand-in for the E2B control plane, for running the unmodified SDKs in normal
// (non-debug) mode against a local envd. Test code only; no dependencies.
//
// It serves one sandbox, backed by one envd (`envdUrl`):
//   POST   /v2/sandboxes                      create: POST envd /init {accessToken} first (what the
//                                             orchestrator does), then 201 with the sandbox record
//   POST   /v2/sandboxes/{id}/connect         200 with the same record (404 for another id)
//   DELETE /sandboxes/{id}                    204 (the SDKs call it from kill(), and when a create
//                                             answer carries an envdVersion < 0.1.0)
// Anything else is 404 with the API's error shape, and is logged to stderr so that a new SDK
// call shows up.
//
// The record carries `envdVersion` (the daemon's `-version` output) and a random
// `envdAccessToken`, which the SDKs then send to envd as `X-Access-Token`.
//
// A second listener, the "edge", forwards every request to envd like E2B's sandbox proxy and
// answers 502 when envd cannot be reached: that 502 is the only thing that makes the SDKs'
// isRunning()/is_running() return false.
//
// Library use (JS tests):  const api = await startFakeApi({ envdUrl, envdVersion })
// CLI use (Python tests):  node fake_api.mjs --envd-url URL --envd-version V
//   prints one JSON line {"apiUrl","edgeUrl","sandboxId"} on stdout, and exits when stdin closes.
import http from 'node:http';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startFakeApi({ envdUrl, envdVersion, log = (m) => process.stderr.write(`fake-api: ${m}\n`) }) {
  const sandboxId = 'fake' + crypto.randomBytes(8).toString('hex');
  const token = crypto.randomBytes(24).toString('hex');
  const record = () => ({
    sandboxID: sandboxId,
    templateID: 'base',
    clientID: 'fakeclient',
    alias: 'base',
    envdVersion,
    envdAccessToken: token,
    trafficAccessToken: null,
    domain: null,
  });
  const calls = [];

  async function initEnvd() {
    const r = await fetch(new URL('/init', envdUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-access-token': token },
      body: JSON.stringify({ accessToken: token }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await r.text();
    if (r.status !== 204) throw new Error(`envd POST /init answered ${r.status}: ${text.trim()}`);
  }

  const api = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const path = url.pathname;
    calls.push(`${req.method} ${path}`);
    await readBody(req);
    let m;
    try {
      if (req.method === 'POST' && path === '/v2/sandboxes') {
        await initEnvd();
        return sendJson(res, 201, record());
      }
      if (req.method === 'POST' && (m = path.match(/^\/v2\/sandboxes\/([^/]+)\/connect$/))) {
        if (m[1] !== sandboxId) return sendJson(res, 404, { code: 404, message: `sandbox ${m[1]} not found` });
        return sendJson(res, 200, record());
      }
      if (req.method === 'DELETE' && (m = path.match(/^\/sandboxes\/([^/]+)$/))) {
        res.writeHead(m[1] === sandboxId ? 204 : 404);
        return res.end();
      }
      log(`unhandled ${req.method} ${req.url}`);
      return sendJson(res, 404, { code: 404, message: `fake control plane does not serve ${req.method} ${path}` });
    } catch (e) {
      log(String(e.message || e));
      return sendJson(res, 500, { code: 500, message: `fake control plane: ${e.message || e}` });
    }
  });

  const upstream = new URL(envdUrl);
  const edge = http.createServer((req, res) => {
    const up = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => {
      if (res.headersSent) return res.destroy();
      sendJson(res, 502, { sandboxId, message: 'The sandbox was not found', code: 502 });
    });
    req.pipe(up);
  });

  const apiPort = await listen(api);
  const edgePort = await listen(edge);
  return {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    edgeUrl: `http://127.0.0.1:${edgePort}`,
    sandboxId,
    calls,
    async close() {
      for (const s of [api, edge]) {
        s.closeAllConnections?.();
        await new Promise((r) => s.close(r));
      }
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    if (i < 0 || i + 1 >= process.argv.length) {
      process.stderr.write(`usage: node fake_api.mjs --envd-url URL --envd-version V\n`);
      process.exit(2);
    }
    return process.argv[i + 1];
  };
  const api = await startFakeApi({ envdUrl: arg('--envd-url'), envdVersion: arg('--envd-version') });
  process.stdout.write(JSON.stringify({ apiUrl: api.apiUrl, edgeUrl: api.edgeUrl, sandboxId: api.sandboxId }) + '\n');
  // Live exactly as long as the parent keeps our stdin open.
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
