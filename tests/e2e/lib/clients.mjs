// Small client helpers shared by the e2e suites: curl with the response parsed, and the error of a
// Connect call that must fail.
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import { ConnectError } from "@connectrpc/connect";

/**
 * Runs a program with `input` (if any) on its stdin; resolves { code, stdout (Buffer), stderr
 * (string) }. Killed, and rejected, after `timeoutMs`.
 */
export function run(cmd, args, { input, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out = [];
    let err = "";
    const t = setTimeout(() => { p.kill("SIGKILL"); reject(new Error(`${cmd} ${args.join(" ")} timed out`)); }, timeoutMs);
    p.stdout.on("data", (d) => out.push(d));
    p.stderr.on("data", (d) => { err += d; });
    p.on("error", (e) => { clearTimeout(t); reject(e); });
    p.on("close", (code) => { clearTimeout(t); resolve({ code, stdout: Buffer.concat(out), stderr: err }); });
    p.stdin.on("error", () => {}); // a program that exits without reading its input
    p.stdin.end(input);
  });
}

/**
 * Runs curl -i; resolves { status, headers (lowercase → value), body (Buffer), text (body as
 * UTF-8), rawHead (the head's lines) }. Rejects when curl itself fails.
 */
export function curl(url, args = [], { maxTime = 60 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn("curl", ["-sS", "-i", "--max-time", String(maxTime), ...args, url], { stdio: ["ignore", "pipe", "pipe"] });
    const out = [];
    let err = "";
    p.stdout.on("data", (d) => out.push(d));
    p.stderr.on("data", (d) => { err += d; });
    p.on("error", reject);
    p.on("close", (code) => {
      if (code !== 0) return reject(new Error(`curl exited ${code}: ${err}`));
      const raw = Buffer.concat(out);
      const split = raw.indexOf("\r\n\r\n");
      const lines = raw.subarray(0, split).toString("latin1").split("\r\n");
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const body = raw.subarray(split + 4);
      resolve({ status: Number(lines[0].split(" ")[1]), headers, body, text: body.toString("utf8"), rawHead: lines });
    });
  });
}

/** The ConnectError of a call that must fail; fails the test when it succeeds. */
export async function errOf(p) {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("expected the call to fail");
}
