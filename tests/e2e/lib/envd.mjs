// Helpers shared by the end-to-end tests: start/stop a real envd, load the RPC schema at run time,
// poll with bounded deadlines, and speak raw HTTP/1.1, HTTP/2 and the Connect/gRPC framings.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import net from "node:net";
import http from "node:http";
import http2 from "node:http2";
import { it as nodeIt } from "node:test";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

export const HOST = "127.0.0.1";

function requireEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (see tests/e2e/CMakeLists.txt)`);
  return v;
}

export const envdBin = () => {
  const bin = requireEnv("ENVD_BIN");
  if (!existsSync(bin)) throw new Error(`ENVD_BIN=${bin} does not exist`);
  return bin;
};
export const protoDir = () => requireEnv("ENVD_PROTO_DIR");
export const descriptorSetPath = () => requireEnv("ENVD_DESCRIPTOR_SET");

let registryCache;
/** File registry built from the descriptor set (protoc --include_imports) — no code generation. */
export function registry() {
  if (!registryCache) {
    const bytes = readFileSync(descriptorSetPath());
    registryCache = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  }
  return registryCache;
}
export function service(name) {
  const s = registry().getService(name);
  if (!s) throw new Error(`service ${name} not found in ${descriptorSetPath()}`);
  return s;
}
export function messageSchema(name) {
  const m = registry().getMessage(name);
  if (!m) throw new Error(`message ${name} not found in ${descriptorSetPath()}`);
  return m;
}
/** Binary protobuf encoding of `init` as message type `name` (e.g. "envdtest.EchoRequest"). */
export const encode = (name, init = {}) => Buffer.from(toBinary(messageSchema(name), create(messageSchema(name), init)));
/** Decodes binary protobuf bytes as message type `name`. */
export const decode = (name, bytes) => fromBinary(messageSchema(name), bytes);

/** Polls `fn` until it returns a truthy value (returned) or `timeoutMs` passes (throws). */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await delay(intervalMs);
  }
}

export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects if `p` does not settle within `ms`. */
export function withTimeout(p, ms, what = "operation") {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

// Daemons still running when this test process exits (a test that threw before `after`, a runner
// stopping early) are killed, so no envd outlives its test file.
const liveChildren = new Set();
process.once("exit", () => {
  for (const c of liveChildren) {
    try { c.kill("SIGKILL"); } catch { /* already gone */ }
  }
});

/**
 * Starts envd on a free port with the test services. Resolves once the "listening on" log line
 * has been seen. The returned handle knows the port, the pid, the collected stderr, and stops the
 * daemon with SIGTERM (SIGKILL after 3 s).
 */
export async function startEnvd({ idleTimeoutMs, maxMessageBytes, extraArgs = [], testServices = true, prefix = [] } = {}) {
  const args = ["--port", "0"];
  if (testServices) args.push("--test-services");
  if (idleTimeoutMs !== undefined) args.push("--idle-timeout-ms", String(idleTimeoutMs));
  if (maxMessageBytes !== undefined) args.push("--max-message-bytes", String(maxMessageBytes));
  // Test daemons expose nothing on the machine's external address unless a test asks for it.
  if (!extraArgs.some((a) => /^--?forward-address(=|$)/.test(a))) args.push("--forward-address=");
  args.push(...extraArgs);
  const bin = envdBin();
  // `prefix`: a command that execs envd in place (e.g. ["prlimit", "--nofile=64:64", "--"]), so
  // the pid is still envd's.
  const child = prefix.length
    ? spawn(prefix[0], [...prefix.slice(1), bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    : spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  let stderr = "";
  let stdout = "";
  let exit = null;
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (d) => { stdout += d; });
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`envd did not report "listening on" within 10 s; stderr:\n${stderr}`));
    }, 10000);
    const onData = (d) => {
      stderr += d;
      const m = /listening on [0-9.]+:(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stderr.on("data", onData);
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`envd exited early (code ${code}, signal ${signal}); stderr:\n${stderr}`));
    });
  });
  // Keep collecting stderr for diagnostics (the listener above keeps appending).
  const handle = {
    port,
    pid: child.pid,
    child,
    baseUrl: `http://${HOST}:${port}`,
    url: (path) => `http://${HOST}:${port}${path}`,
    stderr: () => stderr,
    stdout: () => stdout,
    exitStatus: () => exit,
    alive: () => exit === null,
    /** Number of entries in /proc/<pid>/fd. */
    openFds: () => readdirSync(`/proc/${child.pid}/fd`).length,
    /** Lists /proc/<pid>/fd targets (diagnostics). */
    fdTargets: () => {
      const dir = `/proc/${child.pid}/fd`;
      return readdirSync(dir).map((n) => {
        try { return `${n} -> ${readlinkSafe(`${dir}/${n}`)}`; } catch { return n; }
      });
    },
    async stop() {
      if (exit) return exit;
      child.kill("SIGTERM");
      const t = setTimeout(() => { if (!exit) child.kill("SIGKILL"); }, 3000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
    /** Last few KiB of stderr, for assertion messages. */
    tail: (n = 4000) => stderr.slice(-n),
  };
  return handle;
}

function readlinkSafe(p) {
  try { return readlinkSync(p); } catch { return "?"; }
}

// ---------------------------------------------------------------------------------------------
// Framing helpers

/** 5-byte envelope: flags, big-endian length, payload. `length` may lie (for malformed tests). */
export function envelope(flags, payload, length) {
  const data = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(length ?? data.length, 1);
  return Buffer.concat([head, data]);
}

/** Splits a body into envelopes. Throws on a trailing partial envelope. */
export function parseEnvelopes(buf) {
  const out = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 5) throw new Error(`trailing ${buf.length - off} bytes: not an envelope`);
    const flags = buf.readUInt8(off);
    const len = buf.readUInt32BE(off + 1);
    if (off + 5 + len > buf.length) throw new Error(`envelope at ${off} promises ${len} bytes, only ${buf.length - off - 5} left`);
    out.push({ flags, data: buf.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

/** Parses a Connect streaming response body: data messages (JSON-decoded when json) and the end frame. */
export function parseConnectStream(buf, { json = true } = {}) {
  const envs = parseEnvelopes(buf);
  const messages = [];
  let end = null;
  for (const e of envs) {
    if (e.flags & 0x02) {
      if (end) throw new Error("more than one end frame");
      end = JSON.parse(e.data.toString("utf8"));
    } else {
      if (end) throw new Error("data frame after the end frame");
      messages.push(json ? JSON.parse(e.data.toString("utf8")) : e.data);
    }
  }
  return { messages, end };
}

/** Parses the gRPC-Web trailer frame text ("name: value\r\n" lines). */
export function parseGrpcWebTrailers(data) {
  const out = {};
  for (const line of data.toString("utf8").split("\r\n")) {
    if (!line) continue;
    const i = line.indexOf(":");
    out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 via node:http without connection reuse (so fds are released promptly).

/**
 * One HTTP/1.1 request on its own connection. Resolves { status, headers, body(Buffer) }.
 * `body` may be a Buffer/string or an array of chunks (sent with chunked encoding).
 */
export function h1Request(port, { method = "POST", path, headers = {}, body, timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: HOST, port, method, path, headers, agent: false, timeout: timeoutMs,
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`request ${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
    if (Array.isArray(body)) {
      for (const c of body) req.write(c);
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** Connect unary JSON call over HTTP/1.1. Resolves { status, headers, json }. */
export async function connectJson(port, path, msg, headers = {}) {
  const body = typeof msg === "string" ? msg : JSON.stringify(msg);
  const r = await h1Request(port, { path, headers: { "content-type": "application/json", ...headers }, body });
  let json;
  try { json = r.body.length ? JSON.parse(r.body.toString("utf8")) : undefined; } catch { json = undefined; }
  return { ...r, json };
}

/** Stats of the test service: { cancelled, running } as numbers. */
export async function stats(port) {
  const r = await connectJson(port, "/envdtest.Echo/Stats", {});
  if (r.status !== 200) throw new Error(`Stats answered ${r.status}: ${r.body}`);
  return { cancelled: Number(r.json.cancelled ?? 0), running: Number(r.json.running ?? 0) };
}

// ---------------------------------------------------------------------------------------------
// Raw TCP

/** Opens a TCP connection and collects everything received. */
export function rawConnect(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: HOST, port });
    const state = {
      sock,
      data: Buffer.alloc(0),
      closed: false,
      error: null,
      waiters: [],
    };
    const wake = () => { for (const w of state.waiters.splice(0)) w(); };
    sock.on("data", (d) => { state.data = Buffer.concat([state.data, d]); wake(); });
    sock.on("close", () => { state.closed = true; wake(); });
    sock.on("error", (e) => { state.error = e; wake(); });
    sock.once("connect", () => resolve(state));
    sock.once("error", reject);
    /** Waits until pred(state) is true or the timeout passes (then throws). */
    state.until = (pred, timeoutMs = 5000, what = "data") => new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(state.data.toString("latin1").slice(0, 500))} closed=${state.closed}`)), timeoutMs);
      const check = () => {
        let ok = false;
        try { ok = pred(state); } catch { ok = false; }
        if (ok) { clearTimeout(t); res(state); return; }
        if (state.closed) {
          // One last chance: the predicate was evaluated on all data already.
          clearTimeout(t);
          rej(new Error(`connection closed while waiting for ${what}; got ${JSON.stringify(state.data.toString("latin1").slice(0, 500))}`));
          return;
        }
        state.waiters.push(check);
      };
      check();
    });
    state.waitClosed = (timeoutMs = 5000) => new Promise((res, rej) => {
      if (state.closed) { res(state); return; }
      const t = setTimeout(() => rej(new Error(`server did not close the connection within ${timeoutMs} ms; got ${JSON.stringify(state.data.toString("latin1").slice(0, 300))}`)), timeoutMs);
      sock.once("close", () => { clearTimeout(t); res(state); });
    });
  });
}

/**
 * Incremental HTTP/1.1 response parser over a Buffer. Returns the responses complete so far
 * ({ status, reason, headers (lowercase, joined), body, raw }), and how many bytes they used.
 * Handles Content-Length, chunked and 1xx informational responses; responses without a length
 * (neither header) are treated as ending at connection close (`closed`).
 */
export function parseH1Responses(buf, { closed = false } = {}) {
  const out = [];
  let off = 0;
  for (;;) {
    const headEnd = buf.indexOf("\r\n\r\n", off, "latin1");
    if (headEnd < 0) break;
    const head = buf.subarray(off, headEnd).toString("latin1").split("\r\n");
    const m = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(head[0]);
    if (!m) throw new Error(`bad status line ${JSON.stringify(head[0])}`);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(":");
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    const status = Number(m[2]);
    let p = headEnd + 4;
    let body;
    if (status >= 100 && status < 200 || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
      const parts = [];
      let complete = false;
      for (;;) {
        const le = buf.indexOf("\r\n", p, "latin1");
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString("latin1").split(";")[0], 16);
        if (Number.isNaN(size)) throw new Error("bad chunk size");
        if (size === 0) {
          // Optional trailer lines, then an empty line.
          const q = le + 2;
          if (buf.length < q + 2) break;
          if (buf.subarray(q, q + 2).toString("latin1") === "\r\n") {
            p = q + 2;
          } else {
            const te = buf.indexOf("\r\n\r\n", q, "latin1");
            if (te < 0) break;
            p = te + 4;
          }
          complete = true;
          break;
        }
        if (buf.length < le + 2 + size + 2) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers["content-length"] !== undefined) {
      const n = Number(headers["content-length"]);
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      if (!closed) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    out.push({ version: m[1], status, reason: m[3], headers, body: Buffer.from(body), raw: buf.subarray(off, p) });
    off = p;
  }
  return { responses: out, used: off };
}

/** Builds an HTTP/1.1 request as bytes. */
export function h1Bytes({ method = "POST", path, headers = {}, body }) {
  const b = body === undefined ? undefined : Buffer.from(body);
  const h = { host: `${HOST}`, ...headers };
  if (b !== undefined && h["content-length"] === undefined && h["transfer-encoding"] === undefined) h["content-length"] = String(b.length);
  let s = `${method} ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) s += `${k}: ${v}\r\n`;
  s += "\r\n";
  return b ? Buffer.concat([Buffer.from(s, "latin1"), b]) : Buffer.from(s, "latin1");
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 (h2c prior knowledge) via node:http2

export function h2Connect(port, options = {}) {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://${HOST}:${port}`, options);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/**
 * One request on an existing HTTP/2 session. Resolves { headers, body, trailers } where headers
 * include ':status'.
 */
export function h2Request(session, { method = "POST", path, headers = {}, body, timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": method, ":path": path, ...headers }, { endStream: body === undefined });
    let respHeaders;
    let trailers = {};
    const chunks = [];
    const t = setTimeout(() => { req.close(http2.constants.NGHTTP2_CANCEL); reject(new Error(`h2 ${path} timed out`)); }, timeoutMs);
    req.on("response", (h) => { respHeaders = h; });
    req.on("trailers", (h) => { trailers = h; });
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => { clearTimeout(t); resolve({ headers: respHeaders, status: respHeaders?.[":status"], body: Buffer.concat(chunks), trailers, rstCode: req.rstCode }); });
    req.on("error", (e) => { clearTimeout(t); reject(e); });
    if (body !== undefined) req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/2 frames and HPACK, for hostile clients node:http2 will not imitate (RFC 9113, 7541).

export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
export const H2 = {
  DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9,
  END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4,
  NO_ERROR: 0, PROTOCOL_ERROR: 1, CANCEL: 8, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 11,
  SETTINGS_HEADER_TABLE_SIZE: 1, SETTINGS_MAX_CONCURRENT_STREAMS: 3,
};

/** One frame: 9-byte header (length, type, flags, stream id) and the payload. */
export function h2Frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const p = Buffer.from(payload);
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h.writeUInt8(type, 3);
  h.writeUInt8(flags, 4);
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, p]);
}

/** HPACK integer with an N-bit prefix; `first` holds the pattern bits above the prefix. */
export function hpackInt(value, prefixBits, first = 0) {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) { out.push((v % 128) + 128); v = Math.floor(v / 128); }
  out.push(v);
  return Buffer.from(out);
}
const hpackStr = (s) => { const b = Buffer.from(s, "latin1"); return Buffer.concat([hpackInt(b.length, 7, 0), b]); };
/** HPACK representations (no Huffman coding). */
export const hpack = {
  /** Indexed field (static 1–61, dynamic from 62). */
  indexed: (i) => hpackInt(i, 7, 0x80),
  /** Literal with a new name, added to the dynamic table. */
  literalIndexed: (name, value) => Buffer.concat([Buffer.from([0x40]), hpackStr(name), hpackStr(value)]),
  /** Literal with a new name, not indexed. */
  literal: (name, value) => Buffer.concat([Buffer.from([0x00]), hpackStr(name), hpackStr(value)]),
  /** Literal whose name is table entry `index`, not indexed. */
  literalName: (index, value) => Buffer.concat([hpackInt(index, 4, 0x00), hpackStr(value)]),
};

/** A header block as HEADERS + CONTINUATION frames of at most `maxFrame` bytes. */
export function h2HeaderFrames(streamId, block, { endStream = false, maxFrame = 16384 } = {}) {
  const out = [];
  for (let off = 0; off === 0 || off < block.length; off += maxFrame) {
    const last = off + maxFrame >= block.length;
    const flags = (last ? H2.END_HEADERS : 0) | (off === 0 && endStream ? H2.END_STREAM : 0);
    out.push(h2Frame(off === 0 ? H2.HEADERS : H2.CONTINUATION, flags, streamId, block.subarray(off, off + maxFrame)));
  }
  return Buffer.concat(out);
}

/** Decodes an HPACK Huffman-coded string of digits (enough for a :status value). */
export function huffmanDigits(bytes) {
  let bits = "";
  for (const b of bytes) bits += b.toString(2).padStart(8, "0");
  let out = "";
  let p = 0;
  while (bits.length - p >= 5) {
    const five = parseInt(bits.slice(p, p + 5), 2);
    if (five <= 2) { out += String(five); p += 5; continue; } // '0' 00000, '1' 00001, '2' 00010
    if (bits.length - p < 6) break;
    const six = parseInt(bits.slice(p, p + 6), 2);
    if (six >= 0x19 && six <= 0x1f) { out += String(six - 0x19 + 3); p += 6; continue; } // '3'..'9'
    break; // padding: the EOS prefix (ones)
  }
  return out;
}

/**
 * The :status of a response HEADERS frame from a server told SETTINGS_HEADER_TABLE_SIZE 0 (no
 * dynamic-table references): a static index or a literal with name index 8. -1 if neither.
 */
export function h2Status(payload) {
  let i = 0;
  while (i < payload.length && (payload[i] & 0xe0) === 0x20) i++; // dynamic table size updates
  const x = payload[i];
  const statics = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };
  if (x & 0x80) return statics[x] ?? -1;
  if (x !== 0x48 && x !== 0x08 && x !== 0x18) return -1;
  const len = payload[i + 1] & 0x7f;
  const v = payload.subarray(i + 2, i + 2 + len);
  return Number(payload[i + 1] & 0x80 ? huffmanDigits(v) : v.toString("latin1"));
}

/** Splits bytes into complete frames: { frames: [{ type, flags, streamId, payload }], used }. */
export function parseH2Frames(buf) {
  const frames = [];
  let off = 0;
  while (buf.length - off >= 9) {
    const len = buf.readUIntBE(off, 3);
    if (buf.length - off < 9 + len) break;
    frames.push({
      type: buf.readUInt8(off + 3),
      flags: buf.readUInt8(off + 4),
      streamId: buf.readUInt32BE(off + 5) & 0x7fffffff,
      payload: buf.subarray(off + 9, off + 9 + len),
    });
    off += 9 + len;
  }
  return { frames, used: off };
}

// ---------------------------------------------------------------------------------------------
// Error codes: Connect name, gRPC number, and HTTP status of a Connect unary error (contract §1.3).
export const ERROR_CODES = [
  { name: "canceled", grpc: 1, http: 499 },
  { name: "unknown", grpc: 2, http: 500 },
  { name: "invalid_argument", grpc: 3, http: 400 },
  { name: "deadline_exceeded", grpc: 4, http: 504 },
  { name: "not_found", grpc: 5, http: 404 },
  { name: "already_exists", grpc: 6, http: 409 },
  { name: "permission_denied", grpc: 7, http: 403 },
  { name: "resource_exhausted", grpc: 8, http: 429 },
  { name: "failed_precondition", grpc: 9, http: 400 },
  { name: "aborted", grpc: 10, http: 409 },
  { name: "out_of_range", grpc: 11, http: 400 },
  { name: "unimplemented", grpc: 12, http: 501 },
  { name: "internal", grpc: 13, http: 500 },
  { name: "unavailable", grpc: 14, http: 503 },
  { name: "data_loss", grpc: 15, http: 500 },
  { name: "unauthenticated", grpc: 16, http: 401 },
];

// ---------------------------------------------------------------------------------------------
// node:test `it` with a default per-test timeout, so a hung server call fails one test instead of
// hanging the whole file.
export const DEFAULT_TEST_TIMEOUT_MS = 10000;
export function it(name, opts, fn) {
  if (typeof opts === "function") { fn = opts; opts = {}; }
  return nodeIt(name, { timeout: DEFAULT_TEST_TIMEOUT_MS, ...opts }, fn);
}
