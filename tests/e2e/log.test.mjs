// Where envd's JSON log lines go (contract §7.1 -verbose, operations issue): stderr by default;
// with -verbose stdout instead, at debug level, never both (journald would get every line twice).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { envdBin, waitFor } from "./lib/envd.mjs";

/** Starts envd with `args`, collecting stdout and stderr separately; resolves once it listens. */
async function start(args) {
  const child = spawn(envdBin(), ["--port", "0", "-isnotfc", "-no-cgroups", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  child.stdout.setEncoding("utf8").on("data", (d) => { out.stdout += d; });
  child.stderr.setEncoding("utf8").on("data", (d) => { out.stderr += d; });
  const exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
  const m = await waitFor(() => /listening on [0-9.]+:(\d+)/.exec(out.stdout + out.stderr), { timeoutMs: 10_000, what: "listening on" });
  return {
    out,
    url: (p) => `http://127.0.0.1:${m[1]}${p}`,
    async stop() {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

const jsonLines = (s) => s.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));

describe("log destination", () => {
  it("-verbose: every line on stdout, debug lines included; nothing on stderr", async () => {
    const envd = await start(["-verbose"]);
    assert.equal((await fetch(envd.url("/health"))).status, 204);
    // The /health request line is a debug line: only -verbose shows it.
    await waitFor(() => jsonLines(envd.out.stdout).some((l) => l.path === "/health" && l.level === "debug"), { what: "the /health line on stdout" });
    const exit = await envd.stop();
    assert.equal(exit.code, 0);
    assert.ok(jsonLines(envd.out.stdout).some((l) => /shut down/.test(l.message)), "the last line is flushed at exit");
    assert.equal(envd.out.stderr, "", "stderr stays empty with -verbose");
  });

  it("default: lines on stderr at info, stdout empty", async () => {
    const envd = await start([]);
    assert.equal((await fetch(envd.url("/health"))).status, 204);
    assert.equal((await fetch(envd.url("/envs"))).status, 200);
    await waitFor(() => jsonLines(envd.out.stderr).some((l) => l.path === "/envs"), { what: "the /envs line on stderr" });
    const exit = await envd.stop();
    assert.equal(exit.code, 0);
    assert.ok(!jsonLines(envd.out.stderr).some((l) => l.path === "/health"), "no debug lines at info");
    assert.equal(envd.out.stdout, "");
  });
});
