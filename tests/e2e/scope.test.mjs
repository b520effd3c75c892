// One request scope for REST and RPC (issue 8): a REST handler sees its request cancelled when
// the client goes away (HTTP/1.1 close, HTTP/2 RST_STREAM) and at shutdown, and a pool job polling
// the scope's token stops. Uses the --test-services routes GET /__test/wait-cancel (a pool job that
// waits for the token) and GET /__test/scope-stats.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { startEnvd, rawConnect, h2Connect, waitFor, it } from "./lib/envd.mjs";

async function scopeStats(envd) {
  const r = await fetch(envd.url("/__test/scope-stats"));
  assert.equal(r.status, 200);
  return r.json();
}

describe("request scope", () => {
  let envd;
  before(async () => {
    envd = await startEnvd({ extraArgs: ["--shutdown-timeout-ms", "5000"] });
  });
  after(async () => {
    await envd?.stop();
  });

  it("HTTP/1.1: a client that closes cancels the REST handler and its pool job", async () => {
    const before = await scopeStats(envd);
    const c = await rawConnect(envd.port);
    c.sock.write("GET /__test/wait-cancel HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(async () => (await scopeStats(envd)).started === before.started + 1, { what: "handler started" });
    c.sock.destroy();
    const after = await waitFor(async () => {
      const s = await scopeStats(envd);
      return s.cancelled === before.cancelled + 1 && s;
    }, { what: "the pool job to see the cancellation" });
    assert.equal(after.client_gone, before.client_gone + 1);
  });

  it("HTTP/2: RST_STREAM cancels the REST handler and its pool job", async () => {
    const before = await scopeStats(envd);
    const session = await h2Connect(envd.port);
    try {
      const req = session.request({ ":method": "GET", ":path": "/__test/wait-cancel" });
      req.on("error", () => {});
      await waitFor(async () => (await scopeStats(envd)).started === before.started + 1, { what: "handler started" });
      req.close(http2.constants.NGHTTP2_CANCEL);
      const after = await waitFor(async () => {
        const s = await scopeStats(envd);
        return s.cancelled === before.cancelled + 1 && s;
      }, { what: "the pool job to see the cancellation" });
      assert.equal(after.client_gone, before.client_gone + 1);
    } finally {
      session.close();
    }
  });

  it("shutdown cancels a REST request in flight: 503, and envd exits without waiting for it", async () => {
    const d = await startEnvd({ extraArgs: ["--shutdown-timeout-ms", "60000"] });
    try {
      const c = await rawConnect(d.port);
      c.sock.write("GET /__test/wait-cancel HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(async () => (await scopeStats(d)).started === 1, { what: "handler started" });
      d.child.kill("SIGTERM");
      await c.until((s) => s.data.toString("latin1").includes("\r\n\r\n"), 15000, "a response");
      assert.match(c.data.toString("latin1"), /^HTTP\/1\.1 503 /);
      // Well before the 60 s shutdown timeout: the request ended when it was cancelled.
      const exit = await d.stop();
      assert.equal(exit.code, 0);
      assert.doesNotMatch(d.stderr(), /still open/);
    } finally {
      await d.stop();
    }
  });
});
