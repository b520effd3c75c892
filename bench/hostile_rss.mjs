// Peak RSS growth of envd under issue 7's hostile clients (HTTP/2 headers, HTTP/1.1 heads), each
// on a fresh daemon with default flags, 3 s after the attack. Not a test (figures, no thresholds;
// tests/e2e/bounds.test.mjs holds the checked bounds).
//   node bench/hostile_rss.mjs build/envd/envd
import net from "node:net";
import http from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
const bin = process.argv[2];
const kb = (pid, f) => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
async function start(args = []) {
  const c = spawn(bin, ["--port", "0", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const port = await new Promise((res) => c.stderr.on("data", (d) => { err += d; const m = /listening on [0-9.]+:(\d+)/.exec(err); if (m) res(Number(m[1])); }));
  return { c, port, pid: c.pid };
}
const conn = (port) => new Promise((res) => { const s = net.connect(port, "127.0.0.1", () => res(s)); s.on("error", () => {}); });
function frame(type, flags, id, p) { const h = Buffer.alloc(9); h.writeUIntBE(p.length, 0, 3); h[3] = type; h[4] = flags; h.writeUInt32BE(id, 5); return Buffer.concat([h, p]); }
const str = (s) => { const b = Buffer.from(s); if (b.length < 127) return Buffer.concat([Buffer.from([b.length]), b]); let v = b.length - 127; const o = [127]; while (v >= 128) { o.push(v % 128 + 128); v = Math.floor(v / 128); } o.push(v); return Buffer.concat([Buffer.from(o), b]); };
async function measure(name, args, attack) {
  const d = await start(args);
  await delay(200);
  const base = kb(d.pid, "VmRSS");
  writeFileSync(`/proc/${d.pid}/clear_refs`, "5");
  const info = await attack(d);
  await delay(3000);
  console.log(`${name}: RSS ${base} kB → peak +${((kb(d.pid, "VmHWM") - base) / 1024).toFixed(1)} MiB, now +${((kb(d.pid, "VmRSS") - base) / 1024).toFixed(1)} MiB ${info ?? ""}`);
  d.c.kill("SIGKILL");
}
const pre = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const get = Buffer.concat([Buffer.from([0x82, 0x86]), Buffer.from([0x04]), str("/health"), Buffer.from([0x01]), str("x")]);
await measure("1a h2 HPACK 300 streams x 1 MiB (4 KB entry + 256 indexes)", [], async (d) => {
  const s = await conn(d.port); const out = [pre, frame(4, 0, 0, Buffer.alloc(0))];
  for (let i = 0; i < 300; i++) out.push(frame(1, 4, 1 + 2 * i, Buffer.concat([get, i === 0 ? Buffer.concat([Buffer.from([0x40]), str("x-a"), str("a".repeat(4000))]) : Buffer.alloc(0), Buffer.alloc(256, 0xbe)])));
  const w = Buffer.concat(out); s.write(w); return `(${w.length} bytes sent)`;
});
await measure("1b h2 static-index 50 streams x 20000 empty cookie fields", [], async (d) => {
  const s = await conn(d.port); const out = [pre, frame(4, 0, 0, Buffer.alloc(0))];
  const f = Buffer.concat(Array(20000).fill(Buffer.from([0x0f, 0x11, 0x00])));
  const b2 = Buffer.concat([get, f]);
  for (let i = 0; i < 50; i++) for (let off = 0; off < b2.length; off += 16384) out.push(frame(off === 0 ? 1 : 9, off + 16384 >= b2.length ? 4 : 0, 1 + 2 * i, b2.subarray(off, off + 16384)));
  const w = Buffer.concat(out); s.write(w); return `(${w.length} bytes sent)`;
});
await measure("2a h1 30 x Upgrade: h2c with 960 KiB heads, unfinished body", [], async (d) => {
  let h = "POST /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\nContent-Length: 1000\r\n";
  for (let k = 0; k < 15; k++) h += `X-Big-${k}: ${"c".repeat(65516)}\r\n`;
  const req = Buffer.from(h + "\r\nx");
  for (let i = 0; i < 30; i++) { const s = await conn(d.port); await new Promise((r) => s.write(req, r)); }
  return `(${(30 * req.length / 1048576).toFixed(1)} MiB sent)`;
});
await measure("2b h1 10 x 1 MiB heads of tiny fields, unfinished body", [], async (d) => {
  const head = Buffer.concat([Buffer.from("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"), Buffer.alloc(262144 * 4 - 64, "X:\r\n"), Buffer.from("\r\n")]);
  for (let i = 0; i < 10; i++) { const s = await conn(d.port); await new Promise((r) => s.write(head, r)); }
  return `(${(10 * head.length / 1048576).toFixed(1)} MiB sent)`;
});
await measure("1c h2 token set: 300 streams x 60 KiB headers answered 401, never ended", [], async (d) => {
  await new Promise((res) => { const r = http.request({ host: "127.0.0.1", port: d.port, method: "POST", path: "/init", headers: { "content-type": "application/json" } }, (x) => { x.resume(); x.on("end", res); }); r.end(JSON.stringify({ accessToken: "tok" })); });
  const s = await conn(d.port); const out = [pre, frame(4, 0, 0, Buffer.alloc(0))];
  const post = Buffer.concat([Buffer.from([0x83, 0x86, 0x04]), str("/process.Process/List"), Buffer.from([0x01]), str("x"), Buffer.from([0x0f, 0x10]), str("application/json")]);
  let big = Buffer.alloc(0); for (let k = 0; k < 15; k++) big = Buffer.concat([big, Buffer.from([0x00]), str(`x-h${k}`), str("b".repeat(4000))]);
  const b2 = Buffer.concat([post, big]);
  for (let i = 0; i < 300; i++) for (let off = 0; off < b2.length; off += 16384) out.push(frame(off === 0 ? 1 : 9, off + 16384 >= b2.length ? 4 : 0, 1 + 2 * i, b2.subarray(off, off + 16384)));
  const w = Buffer.concat(out); s.write(w); return `(${(w.length / 1048576).toFixed(1)} MiB sent)`;
});
