// Helpers for the pause tests: a private cgroup v2 subtree (never the machine's own cgroups) and a
// loop-mounted ext4 (never the machine's /). Both are always thawed first in cleanup: a frozen
// cgroup or filesystem left behind wedges the machine for everyone.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";

export const isRoot = () => process.getuid?.() === 0;

/** The first cgroup2 mount point in /proc/self/mountinfo, or null. */
export function cgroup2Mount() {
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    if (line.slice(sep + 3).split(" ")[0] !== "cgroup2") continue;
    return line.slice(0, sep).split(" ")[4];
  }
  return null;
}

/** Why the cgroup tests cannot run here, or null. */
export function cgroupSkipReason() {
  if (!isRoot()) return "needs root";
  const m = cgroup2Mount();
  if (!m) return "no cgroup2 mount";
  return null;
}

/** Writes 0 to every cgroup.freeze under `dir` (deepest last: a parent first lets children run). */
export function thawTree(dir) {
  if (!existsSync(dir)) return;
  const walk = (d) => {
    try { writeFileSync(path.join(d, "cgroup.freeze"), "0"); } catch { /* not a cgroup or gone */ }
    let names = [];
    try { names = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { /* gone */ }
    for (const n of names) walk(path.join(d, n));
  };
  walk(dir);
}

/** Kills every process in the subtree and removes the cgroups, children first. */
export function removeTree(dir) {
  if (!existsSync(dir)) return;
  thawTree(dir);
  const walk = (d) => {
    let names = [];
    try { names = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
    for (const n of names) walk(path.join(d, n));
    try {
      for (const pid of readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
        try { process.kill(Number(pid), "SIGKILL"); } catch { /* gone */ }
      }
    } catch { /* gone */ }
  };
  walk(dir);
  const rm = (d) => {
    let names = [];
    try { names = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
    for (const n of names) rm(path.join(d, n));
    for (let i = 0; i < 50; i++) {
      try { rmdirSync(d); return; } catch (e) {
        if (e.code === "ENOENT") return;
        execFileSync("sleep", ["0.02"]); // killed processes leave the cgroup asynchronously
      }
    }
  };
  rm(dir);
}

/** A private cgroup under the cgroup2 mount: { dir, make(rel, frozen), freezeOf(rel), frozen(rel), cleanup() }. */
export function privateCgroup(tag) {
  const mount = cgroup2Mount();
  const dir = path.join(mount, `envd-e2e-${tag}-${process.pid}-${crypto.randomBytes(3).toString("hex")}`);
  mkdirSync(dir);
  const sleepers = [];
  return {
    dir,
    make(rel) {
      mkdirSync(path.join(dir, rel), { recursive: true });
    },
    /** The value of cgroup.freeze (what was asked). */
    freezeOf: (rel) => readFileSync(path.join(dir, rel, "cgroup.freeze"), "utf8").trim(),
    /** cgroup.events' `frozen` (what the kernel reached). */
    frozen: (rel) => /^frozen 1$/m.test(readFileSync(path.join(dir, rel, "cgroup.events"), "utf8")),
    /** Starts `sleep` in the cgroup `rel`; returns its pid. */
    sleeper(rel) {
      const p = spawn("sleep", ["600"], { stdio: "ignore" });
      sleepers.push(p);
      writeFileSync(path.join(dir, rel, "cgroup.procs"), String(p.pid));
      return p.pid;
    },
    cleanup() {
      thawTree(dir);
      for (const p of sleepers) { try { p.kill("SIGKILL"); } catch { /* gone */ } }
      removeTree(dir);
    },
  };
}

/** Why the loop-mount tests cannot run here, or null. */
export function loopSkipReason() {
  if (!isRoot()) return "needs root";
  for (const tool of ["mkfs.ext4", "losetup", "mount", "umount", "fsfreeze"]) {
    try { execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }); } catch { return `no ${tool}`; }
  }
  return null;
}

/**
 * A loop-mounted ext4 of `mib` MiB in a temporary directory: { dir, mnt, cleanup() }. cleanup()
 * thaws it first (fsfreeze -u; an "Invalid argument" means it was not frozen), then unmounts
 * (lazily if busy) and removes the image.
 */
export function loopExt4(mib = 64) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "envd-e2e-fs-"));
  const img = path.join(dir, "fs.img");
  const mnt = path.join(dir, "mnt");
  mkdirSync(mnt);
  execFileSync("truncate", ["-s", `${mib}M`, img]);
  execFileSync("mkfs.ext4", ["-q", "-F", img], { stdio: "ignore" });
  execFileSync("mount", ["-o", "loop", img, mnt]);
  return {
    dir,
    mnt,
    thaw() {
      try { execFileSync("fsfreeze", ["-u", mnt], { stdio: "ignore" }); } catch { /* not frozen */ }
    },
    cleanup() {
      this.thaw();
      try { execFileSync("umount", [mnt], { stdio: "ignore" }); } catch {
        try { execFileSync("umount", ["-l", mnt], { stdio: "ignore" }); } catch { /* not mounted */ }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
