// Issue 13 (general rule of its extensions): a client that does not opt in gets exactly the fields
// of the wire schema. Strict third-party decoders (Go protojson, Java JsonFormat) reject unknown
// fields, so every response message of every RPC the e2e suite uses is decoded here, without any
// opt-in, and checked against a fixed list taken from shared/spec/wire-schema.md — by field number
// on binary protobuf (walking the raw wire bytes, into every known sub-message) and by key on JSON.
// The list is written out here on purpose: our own descriptor set carries the extension fields.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsn from "node:fs";
import http from "node:http";
import path from "node:path";
import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { startEnvd, messageSchema, h1Request, parseEnvelopes, envelope, decode, waitFor } from "./lib/envd.mjs";

// message → { field number: [JSON name, message type of the field or null] } (wire-schema.md).
const MAP = "map<string,string> entry";
const SCHEMA = {
  [MAP]: { 1: ["key", null], 2: ["value", null] },
  "google.protobuf.Timestamp": { 1: ["seconds", null], 2: ["nanos", null] },
  "process.ProcessConfig": { 1: ["cmd", null], 2: ["args", null], 3: ["envs", MAP], 4: ["cwd", null] },
  "process.ProcessInfo": { 1: ["config", "process.ProcessConfig"], 2: ["pid", null], 3: ["tag", null] },
  "process.ListResponse": { 1: ["processes", "process.ProcessInfo"] },
  "process.UpdateResponse": {},
  "process.ProcessEvent": {
    1: ["start", "process.ProcessEvent.StartEvent"],
    2: ["data", "process.ProcessEvent.DataEvent"],
    3: ["end", "process.ProcessEvent.EndEvent"],
    4: ["keepalive", "process.ProcessEvent.KeepAlive"],
  },
  "process.ProcessEvent.StartEvent": { 1: ["pid", null] },
  "process.ProcessEvent.DataEvent": { 1: ["stdout", null], 2: ["stderr", null], 3: ["pty", null] },
  "process.ProcessEvent.EndEvent": { 1: ["exitCode", null], 2: ["exited", null], 3: ["status", null], 4: ["error", null] },
  "process.ProcessEvent.KeepAlive": {},
  "process.StartResponse": { 1: ["event", "process.ProcessEvent"] },
  "process.ConnectResponse": { 1: ["event", "process.ProcessEvent"] },
  "process.SendInputResponse": {},
  "process.StreamInputResponse": {},
  "process.SendSignalResponse": {},
  "process.CloseStdinResponse": {},
  "filesystem.EntryInfo": {
    1: ["name", null], 2: ["type", null], 3: ["path", null], 4: ["size", null], 5: ["mode", null],
    6: ["permissions", null], 7: ["owner", null], 8: ["group", null], 9: ["modifiedTime", "google.protobuf.Timestamp"],
    10: ["symlinkTarget", null], 11: ["metadata", MAP],
  },
  "filesystem.MoveResponse": { 1: ["entry", "filesystem.EntryInfo"] },
  "filesystem.MakeDirResponse": { 1: ["entry", "filesystem.EntryInfo"] },
  "filesystem.RemoveResponse": {},
  "filesystem.StatResponse": { 1: ["entry", "filesystem.EntryInfo"] },
  "filesystem.ListDirResponse": { 1: ["entries", "filesystem.EntryInfo"] },
  "filesystem.FilesystemEvent": { 1: ["name", null], 2: ["type", null], 3: ["entry", "filesystem.EntryInfo"] },
  "filesystem.WatchDirResponse": {
    1: ["start", "filesystem.WatchDirResponse.StartEvent"],
    2: ["filesystem", "filesystem.FilesystemEvent"],
    3: ["keepalive", "filesystem.WatchDirResponse.KeepAlive"],
  },
  "filesystem.WatchDirResponse.StartEvent": {},
  "filesystem.WatchDirResponse.KeepAlive": {},
  "filesystem.CreateWatcherResponse": { 1: ["watcherId", null] },
  "filesystem.GetWatcherEventsResponse": { 1: ["events", "filesystem.FilesystemEvent"] },
  "filesystem.RemoveWatcherResponse": {},
};

function varint(buf, off) {
  let v = 0n;
  for (let shift = 0n; ; shift += 7n) {
    if (off >= buf.length) throw new Error("truncated varint");
    const b = buf[off++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [v, off];
  }
}

/** Field paths of `buf` (binary `type`) that the wire schema does not list. */
export function unknownBinary(type, buf, where = type, out = []) {
  const fields = SCHEMA[type];
  if (!fields) throw new Error(`no schema for ${type}`);
  let off = 0;
  while (off < buf.length) {
    const [tag, o1] = varint(buf, off);
    off = o1;
    const num = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    const f = fields[num];
    if (!f) out.push(`${where}: field #${num}`);
    if (wt === 0) off = varint(buf, off)[1];
    else if (wt === 1) off += 8;
    else if (wt === 5) off += 4;
    else if (wt === 2) {
      const [len, o2] = varint(buf, off);
      const end = o2 + Number(len);
      if (end > buf.length) throw new Error(`${where}: field #${num} runs past the message`);
      if (f && f[1]) unknownBinary(f[1], buf.subarray(o2, end), `${where}.${f[0]}`, out);
      off = end;
    } else throw new Error(`${where}: field #${num} has wire type ${wt}`);
  }
  if (off !== buf.length) throw new Error(`${where}: trailing bytes`);
  return out;
}

/** Keys of `obj` (canonical JSON of `type`) that the wire schema does not list. */
export function unknownJson(type, obj, where = type, out = []) {
  const byKey = new Map(Object.values(SCHEMA[type]).map(([k, sub]) => [k, sub]));
  for (const [k, v] of Object.entries(obj)) {
    if (!byKey.has(k)) {
      out.push(`${where}: key "${k}"`);
      continue;
    }
    const sub = byKey.get(k);
    if (!sub || sub === MAP || sub === "google.protobuf.Timestamp") continue;
    for (const x of Array.isArray(v) ? v : [v]) unknownJson(sub, x, `${where}.${k}`, out);
  }
  return out;
}

let envd, root;
const checked = new Map(); // "Service/Method fmt" → messages checked
const FORMATS = ["proto", "json"];

before(async () => {
  envd = await startEnvd({ testServices: false, extraArgs: ["-no-cgroups", "--process-retention-ms", "5000"] });
  root = fsn.mkdtempSync("/tmp/envd-e2e-strict-");
});

after(async () => {
  await envd?.stop();
  // In the sanitizer build, a report (at any time, or leaks at exit) fails the file.
  if (envd) assert.doesNotMatch(envd.stderr(), /Sanitizer|runtime error:/);
  if (root) fsn.rmSync(root, { recursive: true, force: true });
});

function reqBody(type, init, fmt) {
  const schema = messageSchema(type);
  const m = create(schema, init);
  return fmt === "proto" ? Buffer.from(toBinary(schema, m)) : Buffer.from(JSON.stringify(toJson(schema, m)));
}

/** Checks one response message; returns it decoded (our descriptor) for the test's own use. */
function check(rpc, fmt, respType, bytes) {
  const unknown = fmt === "proto" ? unknownBinary(respType, bytes) : unknownJson(respType, JSON.parse(bytes.toString("utf8")));
  assert.deepEqual(unknown, [], `${rpc} (${fmt}) answered fields outside the wire schema`);
  checked.set(`${rpc} ${fmt}`, (checked.get(`${rpc} ${fmt}`) ?? 0) + 1);
  return fmt === "proto" ? decode(respType, bytes) : JSON.parse(bytes.toString("utf8"));
}

async function unary(svc, method, fmt, reqType, init) {
  const rpc = `${svc}/${method}`;
  const r = await h1Request(envd.port, {
    path: `/${svc}/${method}`, headers: { "content-type": `application/${fmt}` }, body: reqBody(reqType, init, fmt),
  });
  assert.equal(r.status, 200, `${rpc} (${fmt}): ${r.body}`);
  return check(rpc, fmt, `${svc.split(".")[0]}.${method}Response`, r.body);
}

/** A server-streaming (or client-streaming) call over HTTP/1.1 with the Connect protocol; every
 *  data envelope is checked. Resolves the decoded messages and the end frame. */
async function streaming(svc, method, fmt, reqType, inits, { headers = {} } = {}) {
  const rpc = `${svc}/${method}`;
  const body = Buffer.concat(inits.map((i) => envelope(0, reqBody(reqType, i, fmt))));
  const r = await h1Request(envd.port, {
    path: `/${svc}/${method}`, headers: { "content-type": `application/connect+${fmt}`, ...headers }, body, timeoutMs: 15000,
  });
  assert.equal(r.status, 200, `${rpc} (${fmt}): ${r.body}`);
  const messages = [];
  let end = null;
  for (const e of parseEnvelopes(r.body)) {
    if (e.flags & 0x02) end = JSON.parse(e.data.toString("utf8"));
    else messages.push(check(rpc, fmt, `${svc.split(".")[0]}.${method}Response`, e.data));
  }
  assert.equal(end?.error, undefined, `${rpc} (${fmt}) ended with ${JSON.stringify(end)}`);
  return messages;
}

const P = "process.Process";
const F = "filesystem.Filesystem";
const evCase = (m, fmt) => (fmt === "proto" ? m.event?.event?.case : Object.keys(m.event ?? {})[0]);
const startPid = (msgs, fmt) => {
  const m = msgs.find((x) => evCase(x, fmt) === "start");
  return fmt === "proto" ? m.event.event.value.pid : m.event.start.pid;
};
const pidSel = (pid) => ({ selector: { case: "pid", value: pid } });

describe("without opt-in, responses carry only wire-schema fields", () => {
  for (const fmt of FORMATS) {
    it(`process.Process (${fmt})`, async () => {
      // Start: stdout, stderr, a keepalive, the end; then a PTY process.
      let msgs = await streaming(P, "Start", fmt, "process.StartRequest",
        [{ process: { cmd: "sh", args: ["-c", "echo out; echo err >&2; sleep 1.3; exit 3"], envs: { A: "b" }, cwd: "/" }, tag: `t-${fmt}` }],
        { headers: { "keepalive-ping-interval": "1" } });
      const kinds = msgs.map((m) => evCase(m, fmt));
      for (const k of ["start", "data", "keepalive", "end"]) assert.ok(kinds.includes(k), `${k} in ${kinds}`);
      const ended = startPid(msgs, fmt);
      msgs = await streaming(P, "Start", fmt, "process.StartRequest",
        [{ process: { cmd: "sh", args: ["-c", "echo tty"] }, pty: { size: { cols: 80, rows: 24 } } }]);
      assert.ok(msgs.some((m) => evCase(m, fmt) === "data"));
      // Connect to the one that ended (retained start + end).
      msgs = await streaming(P, "Connect", fmt, "process.ConnectRequest", [{ process: pidSel(ended) }]);
      assert.deepEqual(msgs.map((m) => evCase(m, fmt)), ["start", "end"]);

      // A running process (waits for stdin) for List, Update, SendInput, StreamInput, CloseStdin,
      // SendSignal and a live Connect.
      const tag = `live-${fmt}`;
      const startReq = h1Request(envd.port, {
        path: `/${P}/Start`, headers: { "content-type": `application/connect+${fmt}` }, timeoutMs: 15000,
        body: envelope(0, reqBody("process.StartRequest", { process: { cmd: "sh", args: ["-c", "cat; echo done >&2"], cwd: "/tmp" }, tag, stdin: true }, fmt)),
      });
      let pid;
      await waitFor(async () => {
        const list = await unary(P, "List", fmt, "process.ListRequest", {});
        const procs = list.processes ?? [];
        const mine = procs.find((x) => x.tag === tag);
        if (mine) pid = mine.pid;
        return mine;
      }, { what: "the process in List" });
      const connectReq = streaming(P, "Connect", fmt, "process.ConnectRequest", [{ process: { selector: { case: "tag", value: tag } } }]);
      await unary(P, "Update", fmt, "process.UpdateRequest", { process: pidSel(pid) });
      await unary(P, "SendInput", fmt, "process.SendInputRequest", { process: pidSel(pid), input: { input: { case: "stdin", value: Buffer.from("one\n") } } });
      msgs = await streaming(P, "StreamInput", fmt, "process.StreamInputRequest", [
        { event: { case: "start", value: { process: pidSel(pid) } } },
        { event: { case: "data", value: { input: { input: { case: "stdin", value: Buffer.from("two\n") } } } } },
        { event: { case: "keepalive", value: {} } },
      ]);
      assert.equal(msgs.length, 1);
      await unary(P, "CloseStdin", fmt, "process.CloseStdinRequest", { process: pidSel(pid) });
      const started = await startReq;
      for (const e of parseEnvelopes(started.body))
        if (!(e.flags & 0x02)) check(`${P}/Start`, fmt, "process.StartResponse", e.data);
      msgs = await connectReq;
      assert.equal(evCase(msgs.at(-1), fmt), "end");
      // SendSignal to a sleeping one.
      const sleeper = h1Request(envd.port, {
        path: `/${P}/Start`, headers: { "content-type": `application/connect+${fmt}` }, timeoutMs: 15000,
        body: envelope(0, reqBody("process.StartRequest", { process: { cmd: "sleep", args: ["30"] }, tag: `sleep-${fmt}` }, fmt)),
      });
      await waitFor(async () => {
        const list = await unary(P, "List", fmt, "process.ListRequest", {});
        const mine = (list.processes ?? []).find((x) => x.tag === `sleep-${fmt}`);
        if (mine) pid = mine.pid;
        return mine;
      }, { what: "the sleeper in List" });
      await unary(P, "SendSignal", fmt, "process.SendSignalRequest", { process: pidSel(pid), signal: 9 });
      for (const e of parseEnvelopes((await sleeper).body))
        if (!(e.flags & 0x02)) check(`${P}/Start`, fmt, "process.StartResponse", e.data);
    });

    it(`filesystem.Filesystem (${fmt})`, async () => {
      const dir = path.join(root, fmt);
      await unary(F, "MakeDir", fmt, "filesystem.MakeDirRequest", { path: dir });
      fsn.writeFileSync(path.join(dir, "f"), "x");
      fsn.symlinkSync("f", path.join(dir, "link"));
      await unary(F, "Stat", fmt, "filesystem.StatRequest", { path: path.join(dir, "link") });
      const listed = await unary(F, "ListDir", fmt, "filesystem.ListDirRequest", { path: dir, depth: 2 });
      assert.equal(listed.entries.length, 2);
      await unary(F, "Move", fmt, "filesystem.MoveRequest", { source: path.join(dir, "f"), destination: path.join(dir, "g") });

      const { watcherId } = await unary(F, "CreateWatcher", fmt, "filesystem.CreateWatcherRequest", { path: dir, includeEntry: true });
      fsn.writeFileSync(path.join(dir, "h"), "y");
      await waitFor(async () => {
        const r = await unary(F, "GetWatcherEvents", fmt, "filesystem.GetWatcherEventsRequest", { watcherId });
        return (r.events ?? []).length > 0;
      }, { what: "watcher events" });
      await unary(F, "RemoveWatcher", fmt, "filesystem.RemoveWatcherRequest", { watcherId });

      // WatchDir: open a stream, make an event, read up to it, hang up.
      await new Promise((resolve, reject) => {
        const req = h1RawStream(`/${F}/WatchDir`, fmt, reqBody("filesystem.WatchDirRequest", { path: dir, includeEntry: true }, fmt), (data) => {
          let events;
          try {
            events = parseEnvelopesPrefix(data);
          } catch (e) { return reject(e); }
          if (events.length === 1) fsn.writeFileSync(path.join(dir, "w"), "z");
          if (events.some((e) => evHas(e, fmt))) {
            try {
              for (const e of events) check(`${F}/WatchDir`, fmt, "filesystem.WatchDirResponse", e.data);
            } catch (e) { reject(e); }
            req.destroy();
            resolve();
          }
        }, reject);
      });
      await unary(F, "Remove", fmt, "filesystem.RemoveRequest", { path: dir });
    });
  }

  it("every RPC of the e2e suite was checked in both formats", () => {
    const rpcs = [
      "Start", "Connect", "List", "SendInput", "SendSignal", "Update", "CloseStdin", "StreamInput",
    ].map((m) => `${P}/${m}`).concat(
      ["Stat", "ListDir", "MakeDir", "Move", "Remove", "WatchDir", "CreateWatcher", "GetWatcherEvents", "RemoveWatcher"].map((m) => `${F}/${m}`));
    for (const rpc of rpcs) for (const fmt of FORMATS) assert.ok(checked.get(`${rpc} ${fmt}`) > 0, `${rpc} (${fmt}) not checked`);
  });

  it("the checker itself: an opted-in stream's extension fields are reported", async () => {
    // DataEvent.offset (#100) appears on a Start that asks for output retention: both walkers see it.
    for (const fmt of FORMATS) {
      const body = envelope(0, reqBody("process.StartRequest", { process: { cmd: "echo", args: ["hi"] }, outputRetentionBytes: 4096n }, fmt));
      const r = await h1Request(envd.port, { path: `/${P}/Start`, headers: { "content-type": `application/connect+${fmt}` }, body });
      assert.equal(r.status, 200);
      const found = parseEnvelopes(r.body).filter((e) => !(e.flags & 0x02)).flatMap((e) =>
        fmt === "proto" ? unknownBinary("process.StartResponse", e.data) : unknownJson("process.StartResponse", JSON.parse(e.data.toString("utf8"))));
      assert.deepEqual(found, [fmt === "proto" ? "process.StartResponse.event.data: field #100" : 'process.StartResponse.event.data: key "offset"']);
    }
  });
});

function evHas(e, fmt) {
  const m = fmt === "proto" ? decode("filesystem.WatchDirResponse", e.data) : JSON.parse(e.data.toString("utf8"));
  return fmt === "proto" ? m.event?.case === "filesystem" : "filesystem" in m;
}

// Whole envelopes at the front of `buf` (a stream still being received).
function parseEnvelopesPrefix(buf) {
  const out = [];
  let off = 0;
  while (buf.length - off >= 5) {
    const len = buf.readUInt32BE(off + 1);
    if (off + 5 + len > buf.length) break;
    if (!(buf[off] & 0x02)) out.push({ flags: buf[off], data: buf.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

function h1RawStream(p, fmt, payload, onData, onError) {
  let data = Buffer.alloc(0);
  const req = http.request({ host: "127.0.0.1", port: envd.port, method: "POST", path: p, agent: false,
    headers: { "content-type": `application/connect+${fmt}` } }, (res) => {
    if (res.statusCode !== 200) onError(new Error(`${p}: HTTP ${res.statusCode}`));
    res.on("data", (d) => { data = Buffer.concat([data, d]); onData(data); });
    res.on("error", () => {});
  });
  req.on("error", () => {});
  req.end(envelope(0, payload));
  return req;
}
