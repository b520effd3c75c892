// Discoverable by standard gRPC tools: grpc.reflection.v1 / v1alpha server reflection and
// grpc.health.v1 health, checked with grpcurl (installed once at a pinned version, cached) and
// with @grpc/grpc-js (v1alpha directly, Watch across a shutdown).
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { it, startEnvd, protoDir, registry } from "./lib/envd.mjs";

// The pinned version and the cache directory live in setup_grpcurl.sh (scripts/dev test runs it
// before the tests; here it is a fallback, instant when installed).
let grpcurlBin = "";

/** Installs grpcurl once (cached across runs); returns null, or why it could not. */
function installGrpcurl() {
  try {
    const script = fileURLToPath(new URL("./setup_grpcurl.sh", import.meta.url));
    grpcurlBin = execFileSync("bash", [script], { stdio: ["ignore", "pipe", "pipe"], timeout: 280000 }).toString().trim();
    return existsSync(grpcurlBin) ? null : "setup_grpcurl.sh produced no binary";
  } catch (e) {
    return `cannot install grpcurl (tests/e2e/setup_grpcurl.sh): ${String(e.stderr || e.message).slice(0, 400)}`;
  }
}

function grpcurl(args) {
  return new Promise((resolve) => {
    execFile(grpcurlBin, args, { timeout: 8000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

const loadOptions = { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: false, oneofs: true };

let envd;
let grpcurlSkip = null;
let pkg;

before(async () => {
  grpcurlSkip = installGrpcurl();
  if (grpcurlSkip) console.log(`# SKIP grpcurl checks: ${grpcurlSkip}`);
  envd = await startEnvd({ testServices: false });
  pkg = grpc.loadPackageDefinition(protoLoader.loadSync(
    ["reflection_v1.proto", "reflection_v1alpha.proto", "health.proto"], { ...loadOptions, includeDirs: [protoDir()] }));
});

after(async () => {
  await envd?.stop();
});

const addr = () => `127.0.0.1:${envd.port}`;

describe("grpcurl", () => {
  it("lists the served services (no envdtest without --test-services)", { timeout: 300000 }, async (t) => {
    if (grpcurlSkip) return t.skip(grpcurlSkip);
    const r = await grpcurl(["-plaintext", addr(), "list"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), [
      "filesystem.Filesystem",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "process.Process",
    ]);
  });

  it("describes process.Process and a message of filesystem", async (t) => {
    if (grpcurlSkip) return t.skip(grpcurlSkip);
    let r = await grpcurl(["-plaintext", addr(), "describe", "process.Process"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /process\.Process is a service:/);
    assert.match(r.stdout, /rpc Start \( \.process\.StartRequest \) returns \( stream \.process\.StartResponse \);/);
    assert.match(r.stdout, /rpc StreamInput \( stream \.process\.StreamInputRequest \)/);
    r = await grpcurl(["-plaintext", addr(), "describe", "filesystem.EntryInfo"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /message EntryInfo \{/);
    r = await grpcurl(["-plaintext", addr(), "describe", "process.Nope"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /process\.Nope/);
  });

  it("makes real calls: process.Process/List and Health/Check", async (t) => {
    if (grpcurlSkip) return t.skip(grpcurlSkip);
    let r = await grpcurl(["-plaintext", "-d", "{}", addr(), "process.Process/List"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {});
    r = await grpcurl(["-plaintext", "-d", "{}", addr(), "grpc.health.v1.Health/Check"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { status: "SERVING" });
    r = await grpcurl(["-plaintext", "-d", '{"service":"process.Process"}', addr(), "grpc.health.v1.Health/Check"]);
    assert.deepEqual(JSON.parse(r.stdout), { status: "SERVING" });
  });

  it("is refused without the access token once one is set, and works with it", async (t) => {
    if (grpcurlSkip) return t.skip(grpcurlSkip);
    const d = await startEnvd({ testServices: false });
    try {
      const init = await fetch(d.url("/init"), {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ accessToken: "tok-refl" }),
      });
      assert.equal(init.status, 204);
      const a = `127.0.0.1:${d.port}`;
      let r = await grpcurl(["-plaintext", a, "list"]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Unauthenticated|Code: Unauthenticated|unauthenticated/i);
      r = await grpcurl(["-plaintext", "-H", "X-Access-Token: tok-refl", a, "list"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /process\.Process/);
    } finally {
      await d.stop();
    }
  });
});

const BUF = join(dirname(fileURLToPath(import.meta.url)), "node_modules", ".bin", "buf");

function bufCurl(args, cacheDir) {
  return new Promise((resolve) => {
    execFile(BUF, ["curl", ...args], { timeout: 8000, env: { ...process.env, BUF_CACHE_DIR: cacheDir, NO_COLOR: "1" } },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

describe("buf curl without a schema (reflection)", () => {
  let cacheDir;
  before(() => { cacheDir = mkdtempSync(join(tmpdir(), "envd-e2e-refl-buf-")); });
  after(() => rmSync(cacheDir, { recursive: true, force: true }));

  for (const [proto, flags] of [["grpc", ["--http2-prior-knowledge"]], ["connect", []]]) {
    for (const reflect of ["grpc-v1", "grpc-v1alpha"]) {
      it(`--protocol ${proto} --reflect-protocol ${reflect}: lists methods and calls process.Process/List`, async () => {
        const base = ["--protocol", proto, ...flags, "--reflect-protocol", reflect];
        let r = await bufCurl([...base, "--list-methods", envd.baseUrl], cacheDir);
        assert.equal(r.code, 0, r.stderr);
        const methods = r.stdout.trim().split("\n");
        assert.ok(methods.includes("process.Process/Start"), r.stdout);
        assert.ok(methods.includes("filesystem.Filesystem/ListDir"), r.stdout);
        assert.ok(methods.includes("grpc.health.v1.Health/Watch"), r.stdout);
        r = await bufCurl([...base, "-d", "{}", `${envd.baseUrl}/process.Process/List`], cacheDir);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), {});
      });
    }
  }
});

/** One reflection stream: writes `requests`, ends, collects every response. */
function reflect(version, requests, address = addr()) {
  const Svc = pkg.grpc.reflection[version].ServerReflection;
  const client = new Svc(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    const out = [];
    call.on("data", (m) => out.push(m));
    call.on("error", (e) => { client.close(); reject(e); });
    call.on("end", () => { client.close(); resolve(out); });
    for (const r of requests) call.write(r);
    call.end();
  });
}

for (const version of ["v1", "v1alpha"]) {
  describe(`grpc.reflection.${version} over grpc-js`, () => {
    it("answers list_services, file_containing_symbol, file_by_filename and errors in the stream", async () => {
      const out = await reflect(version, [
        { list_services: "" },
        { file_containing_symbol: "process.Process" },
        { file_by_filename: "filesystem.proto" },
        { file_containing_symbol: "process.Nope" },
        { file_containing_extension: { containing_type: "process.StartRequest", extension_number: 99 } },
      ]);
      assert.equal(out.length, 5);
      assert.deepEqual(out[0].list_services_response.service.map((s) => s.name), [
        "filesystem.Filesystem", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection", "process.Process",
      ]);
      assert.equal(out[1].original_request.file_containing_symbol, "process.Process");
      // filesystem.proto comes with its import (grpcurl needs the transitive dependencies).
      const files = out[1].file_descriptor_response.file_descriptor_proto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
      assert.equal(files[0].name, "process.proto");
      assert.equal(files.length, 1);  // process.proto imports nothing
      const fsFiles = out[2].file_descriptor_response.file_descriptor_proto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
      assert.deepEqual(fsFiles.map((f) => f.name), ["filesystem.proto", "google/protobuf/timestamp.proto"]);
      assert.equal(out[3].error_response.error_code, 5);
      assert.equal(out[4].error_response.error_code, 5);
    });
  });
}

it("reflection serves exactly the wire schema: every message's fields match the descriptor set", async () => {
  const out = await reflect("v1", [{ file_by_filename: "process.proto" }, { file_by_filename: "filesystem.proto" }]);
  const reg = registry();
  let checked = 0;
  for (const resp of out) {
    const file = fromBinary(FileDescriptorProtoSchema, resp.file_descriptor_response.file_descriptor_proto[0]);
    for (const msg of file.messageType) {
      const want = reg.getMessage(`${file.package}.${msg.name}`);
      assert.ok(want, `${file.package}.${msg.name} is in the wire schema`);
      assert.deepEqual(
        msg.field.map((f) => [f.name, f.number]).sort(),
        want.fields.map((f) => [f.name, f.number]).sort(),
        `${msg.name} fields`);
      checked++;
    }
  }
  assert.ok(checked > 10, `checked ${checked} messages`);
});

describe("grpc.health.v1.Health over grpc-js", () => {
  it("Check: an unknown service is NOT_FOUND", async () => {
    const client = new pkg.grpc.health.v1.Health(addr(), grpc.credentials.createInsecure());
    const err = await new Promise((resolve) => client.Check({ service: "nope.Nope" }, (e) => resolve(e)));
    client.close();
    assert.equal(err?.code, grpc.status.NOT_FOUND);
  });

  it("Watch sends SERVING, then NOT_SERVING when the daemon shuts down, then ends OK", async () => {
    const d = await startEnvd({ testServices: false });
    const client = new pkg.grpc.health.v1.Health(`127.0.0.1:${d.port}`, grpc.credentials.createInsecure());
    const seen = [];
    let first;
    const gotFirst = new Promise((r) => { first = r; });
    const done = new Promise((resolve) => {
      const call = client.Watch({ service: "" });
      call.on("data", (m) => { seen.push(m.status); first(); });
      call.on("error", (e) => seen.push(`error ${e.code}`));
      call.on("status", (s) => resolve(s));
    });
    await gotFirst;
    const exit = await d.stop();
    const status = await done;
    client.close();
    assert.deepEqual(seen, ["SERVING", "NOT_SERVING"]);
    assert.equal(status.code, grpc.status.OK);
    assert.equal(exit.code, 0);
  });
});
