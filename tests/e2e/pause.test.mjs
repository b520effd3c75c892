// Pause hooks against a real envd (contract §4.13, §6.4, §6.8): POST /freeze in legacy and
// hierarchy mode, with and without maxWaitMs, /unfreeze, the /init thaw and its freeze audit, the
// thaw watchdog, the token gate on the internal routes. Every daemon gets a private cgroup
// (under the cgroup2 mount of /proc/self/mountinfo) as -cgroup-root, with real `sleep` processes
// in it; cleanup thaws it before anything else.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { startEnvd, waitFor } from "./lib/envd.mjs";
import { cgroupSkipReason, privateCgroup } from "./lib/pause.mjs";

const FREEZE_FIELDS = ["allowlisted", "failed", "frozen", "mode", "notFrozen", "preFrozen", "requested", "sweepMs", "truncated", "unobservable", "visited", "waitMs"];
const skip = cgroupSkipReason();

async function post(envd, path, headers = {}) {
  const r = await fetch(envd.url(path), { method: "POST", headers, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

describe("cgroup freeze", { skip: skip ?? false }, () => {
  let cg;
  let envd;
  before(async () => {
    cg = privateCgroup("pause");
    envd = await startEnvd({ extraArgs: ["-isnotfc", "-cgroup-root", cg.dir] });
    // envd made user and ptys; the workload: a sleeper in each, and one deeper.
    cg.make("user/deep");
    cg.sleeper("user/deep");
    cg.sleeper("ptys");
  });
  after(async () => {
    cg?.cleanup(); // thaw first, whatever happened
    const alive = envd?.alive();
    const exit = await envd?.stop();
    assert.ok(alive !== false, `envd died:\n${envd?.tail()}`);
    assert.equal(exit?.code, 0, envd?.tail());
  });

  it("legacy /freeze?maxWaitMs waits for frozen and answers 200 FreezeResult; /unfreeze 204 thaws", async () => {
    const r = await post(envd, "/freeze?maxWaitMs=5000");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.equal(r.headers.get("cache-control"), "no-store");
    const res = JSON.parse(r.text);
    assert.deepEqual(Object.keys(res), FREEZE_FIELDS);
    assert.equal(res.mode, "legacy");
    assert.equal(res.requested, 2);
    assert.equal(res.frozen, 2);
    assert.equal(res.notFrozen, 0);
    assert.equal(res.failed, 0);
    assert.equal(res.visited, 0);
    assert.equal(res.truncated, false);
    // Answered only once the kernel reports them frozen, the nested one included.
    assert.ok(cg.frozen("user") && cg.frozen("ptys") && cg.frozen("user/deep"));
    const u = await post(envd, "/unfreeze");
    assert.equal(u.status, 204);
    assert.equal(u.headers.get("cache-control"), "no-store");
    assert.equal(cg.freezeOf("user"), "0");
    assert.equal(cg.freezeOf("ptys"), "0");
    await waitFor(() => !cg.frozen("user/deep"), { what: "user/deep thawed" });
  });

  it("/freeze without maxWaitMs (or <= 0) answers 204 at once; the next authorised /init thaws and audits", async () => {
    for (const q of ["", "?maxWaitMs=0", "?maxWaitMs=-5"]) {
      const r = await post(envd, `/freeze${q}`);
      assert.equal(r.status, 204, q);
      assert.equal(r.text, "");
      assert.equal(cg.freezeOf("user"), "1", q);
    }
    await waitFor(() => cg.frozen("user"), { what: "user frozen" });
    const i = await fetch(envd.url("/init"), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(i.status, 204);
    const audit = JSON.parse(i.headers.get("x-envd-freeze-audit"));
    assert.deepEqual(Object.keys(audit), ["visited", "frozen", "escaped", "violations", "truncated"]);
    assert.ok(audit.frozen >= 3, JSON.stringify(audit)); // user, user/deep, ptys
    assert.equal(audit.escaped, 0);
    assert.equal(audit.violations, 0);
    assert.equal(cg.freezeOf("user"), "0");
    assert.equal(cg.freezeOf("ptys"), "0");
    // No freeze in effect: no audit header, and nothing breaks.
    const again = await fetch(envd.url("/init"), { method: "POST", body: "{}" });
    assert.equal(again.status, 204);
    assert.equal(again.headers.get("x-envd-freeze-audit"), null);
  });

  it("hierarchy mode freezes every other cgroup under -cgroup-root, not the allowlisted socats; maxCgroups truncates", async () => {
    cg.make("other/inner");
    cg.make("socats");
    cg.sleeper("other/inner");
    const r = await post(envd, "/freeze?maxWaitMs=5000&mode=hierarchy");
    assert.equal(r.status, 200, r.text);
    const res = JSON.parse(r.text);
    assert.equal(res.mode, "hierarchy");
    assert.equal(res.visited, 4); // other, ptys, socats, user
    assert.equal(res.allowlisted, 1);
    assert.equal(res.requested, 3);
    assert.equal(res.notFrozen, 0);
    assert.ok(cg.frozen("other") && cg.frozen("other/inner"));
    assert.equal(cg.freezeOf("socats"), "0");
    assert.equal((await post(envd, "/unfreeze")).status, 204);
    assert.equal(cg.freezeOf("other"), "0");

    const t = JSON.parse((await post(envd, "/freeze?maxWaitMs=5000&mode=hierarchy&maxCgroups=1")).text);
    assert.equal(t.truncated, true);
    assert.equal(t.visited, 1);
    assert.equal(cg.freezeOf("other"), "1"); // the first one, by name
    assert.equal(cg.freezeOf("user"), "1"); // the legacy pair always
    assert.equal((await post(envd, "/unfreeze")).status, 204);
    assert.equal(cg.freezeOf("other"), "0");
  });

  it("cgroups the guest froze itself stay frozen across /unfreeze", async () => {
    cg.make("other/guest");
    writeFileSync(`${cg.dir}/other/guest/cgroup.freeze`, "1");
    const res = JSON.parse((await post(envd, "/freeze?maxWaitMs=5000&mode=hierarchy")).text);
    assert.ok(res.preFrozen >= 1, JSON.stringify(res));
    assert.equal((await post(envd, "/unfreeze")).status, 204);
    assert.equal(cg.freezeOf("other"), "0");
    assert.equal(cg.freezeOf("other/guest"), "1");
  });

  it("bad query parameters: 400 with envd's binding text", async () => {
    const r = await post(envd, "/freeze?maxWaitMs=abc");
    assert.equal(r.status, 400);
    assert.equal(r.text, 'Invalid format for parameter maxWaitMs: error binding string parameter: strconv.ParseInt: parsing "abc": invalid syntax\n');
    assert.equal(cg.freezeOf("user"), "0"); // nothing was frozen
    const m = await post(envd, "/freeze?maxCgroups=1&maxCgroups=2");
    assert.equal(m.status, 400);
    const g = await fetch(envd.url("/freeze"));
    assert.equal(g.status, 405);
  });
});

describe("thaw watchdog and the token gate", { skip: skip ?? false }, () => {
  let cg;
  let envd;
  before(async () => {
    cg = privateCgroup("pausewd");
    envd = await startEnvd({ extraArgs: ["-isnotfc", "-cgroup-root", cg.dir, "--thaw-watchdog-ms", "300"] });
    cg.sleeper("user");
  });
  after(async () => {
    cg?.cleanup();
    await envd?.stop();
  });

  it("a freeze nobody thaws is undone by the watchdog", async () => {
    assert.equal((await post(envd, "/freeze?maxWaitMs=5000")).status, 200);
    assert.equal(cg.freezeOf("user"), "1");
    await waitFor(() => cg.freezeOf("user") === "0", { timeoutMs: 10_000, what: "the watchdog's thaw" });
    await waitFor(() => /thaw watchdog/.test(envd.stderr()), { what: "the watchdog's log line" });
    await waitFor(() => !cg.frozen("user"), { what: "user thawed" });
  });

  it("with a token set the internal routes need it; a refused /init does not thaw", async () => {
    const token = "pause-token-0123456789";
    const i = await fetch(envd.url("/init"), { method: "POST", body: JSON.stringify({ accessToken: token }) });
    assert.equal(i.status, 204);
    for (const p of ["/freeze", "/unfreeze"]) {
      assert.equal((await post(envd, p)).status, 401, p);
    }
    assert.equal(cg.freezeOf("user"), "0");
    assert.equal((await post(envd, "/freeze", { "x-access-token": token })).status, 204);
    assert.equal(cg.freezeOf("user"), "1");
    const refused = await fetch(envd.url("/init"), { method: "POST", body: JSON.stringify({ accessToken: "wrong-token" }) });
    assert.equal(refused.status, 401);
    assert.equal(cg.freezeOf("user"), "1");
    const ok = await fetch(envd.url("/init"), { method: "POST", body: JSON.stringify({ accessToken: token }) });
    assert.equal(ok.status, 204);
    assert.equal(cg.freezeOf("user"), "0");
  });
});

describe("shutdown while frozen", { skip: skip ?? false }, () => {
  it("SIGTERM thaws the cgroups this envd froze before it exits", async () => {
    const cg = privateCgroup("pausestop");
    try {
      const envd = await startEnvd({ extraArgs: ["-isnotfc", "-cgroup-root", cg.dir] });
      try {
        assert.equal((await post(envd, "/freeze?mode=hierarchy")).status, 204);
        assert.equal(cg.freezeOf("user"), "1");
      } finally {
        assert.equal((await envd.stop()).code, 0, envd.tail());
      }
      assert.equal(cg.freezeOf("user"), "0");
      assert.equal(cg.freezeOf("ptys"), "0");
    } finally {
      cg.cleanup();
    }
  });
});

describe("freeze without cgroups", () => {
  it("-no-cgroups: /freeze reports the legacy pair unobservable (as envd), /unfreeze 204", async () => {
    const envd = await startEnvd({ extraArgs: ["-isnotfc", "-no-cgroups"] });
    try {
      const r = await post(envd, "/freeze?maxWaitMs=100&mode=hierarchy");
      assert.equal(r.status, 200);
      // envd 0.6.13 -no-cgroups, same request: this body except the timings.
      assert.deepEqual({ ...JSON.parse(r.text), sweepMs: 0, waitMs: 0 }, {
        allowlisted: 0, failed: 0, frozen: 0, mode: "legacy", notFrozen: 0, preFrozen: 0,
        requested: 2, sweepMs: 0, truncated: false, unobservable: 2, visited: 0, waitMs: 0,
      });
      assert.equal((await post(envd, "/unfreeze")).status, 204);
    } finally {
      await envd.stop();
    }
  });
});

describe("collapse", () => {
  it("POST /collapse answers 200 CollapseResult and stops the trim ticks until the next /init", async () => {
    const envd = await startEnvd({ extraArgs: ["-isnotfc", "-no-cgroups", "--trim-interval-ms", "20", "--log-level", "debug"] });
    try {
      const r = await post(envd, "/collapse");
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get("content-type"), "application/json");
      assert.equal(r.headers.get("cache-control"), "no-store");
      const res = JSON.parse(r.text);
      assert.deepEqual(Object.keys(res), ["alreadyHuge", "chunks", "collapsed", "elapsedMs", "regions", "skipped"]);
      assert.ok(res.regions >= 1, r.text);
      assert.equal(res.chunks, res.alreadyHuge + res.collapsed + res.skipped, r.text);
      await waitFor(() => /trim tick skipped/.test(envd.stderr()), { what: "a skipped trim tick" });
      const i = await fetch(envd.url("/init"), { method: "POST", body: "{}" });
      assert.equal(i.status, 204);
      await waitFor(() => /"trim ticks resumed","by":"\/init"/.test(envd.stderr()), { what: "the trim ticks to resume" });
      // Internal route: the token gate applies.
      const token = "collapse-token-0123";
      assert.equal((await fetch(envd.url("/init"), { method: "POST", body: JSON.stringify({ accessToken: token }) })).status, 204);
      assert.equal((await post(envd, "/collapse")).status, 401);
      assert.equal((await post(envd, "/collapse", { "x-access-token": token })).status, 200);
    } finally {
      await envd.stop();
    }
  });
});
