#!/usr/bin/env python3
"""Checks the Dockerfile's runtime stage without a Docker engine (ctest ops.image).

It parses the Dockerfile, takes its last stage (FROM debian:bookworm[-slim]), and replays it in a
debootstrap chroot of bookworm (minbase): RUN steps run as /bin/sh -c in the chroot with /proc
mounted, ENV/WORKDIR apply to them, COPY steps place the built envd (COPY --from=build) or the
checkout's file at their destination. Then it checks what E2B's templates give the SDKs: user
`user` with bash, a home and passwordless sudo; sudo, git, curl, python3 and `python`, bash,
coreutils; the COPY targets; and it starts the ENTRYPOINT the way a container does (in new PID
and mount namespaces, so its first program is PID 1), checks that a reaper is PID 1 with envd
under it, that /health answers, that an orphan left by a process envd started gets reaped, and
that SIGTERM ends it all with exit code 0.

Without a cached base it is skipped (exit 77) unless ENVD_LONG=1: making the base takes minutes.
The chroots are cached outside the checkout (ENVD_IMAGE_CACHE, default
/var/cache/envd-image-check): the debootstrap base keyed by suite and mirror, the replayed stage
keyed by the stage's text (so a changed Dockerfile is replayed; an unchanged one only gets the
fresh COPY files). The script runs in its own mount namespace: every mount it makes goes away
when it exits, however it exits. Usage: check_image.py <envd binary>
"""
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from fcntl import LOCK_EX, flock

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DOCKERFILE = os.path.join(REPO, "Dockerfile")
CACHE = os.environ.get("ENVD_IMAGE_CACHE", "/var/cache/envd-image-check")
MIRROR = os.environ.get("ENVD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SKIP = 77  # ctest SKIP_RETURN_CODE
KEEP = ("RUN", "COPY", "ENV", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD", "LABEL", "USER", "ARG")

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", flush=True)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing


def parse_dockerfile(text):
    """Returns the instructions as (KEYWORD, arguments) with continuations joined, comments gone."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if cur and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            cur += line[:-1].rstrip() + " "
            continue
        cur += line
        keyword, _, args = cur.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        cur = ""
    if cur:
        raise ValueError("the Dockerfile ends inside a continued instruction")
    return out


def last_stage(instructions):
    starts = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    if not starts:
        raise ValueError("no FROM in the Dockerfile")
    return instructions[starts[-1]], instructions[starts[-1] + 1:]


def parse_copy(args):
    """COPY [--from=X] [--chown=..] src... dst → (from, [src], dst)."""
    words = args.split()
    frm = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            frm = flag.split("=", 1)[1]
        elif not flag.startswith("--chmod=") and not flag.startswith("--chown="):
            raise ValueError(f"COPY flag {flag} is not supported by this check")
    if args.lstrip().startswith("["):
        raise ValueError("COPY in JSON form is not supported by this check")
    if len(words) < 2:
        raise ValueError(f"COPY {args}: needs a source and a destination")
    return frm, words[:-1], words[-1]


def parse_env(args):
    """ENV k=v [k2=v2] or ENV k v."""
    if "=" not in args.split()[0]:
        k, _, v = args.partition(" ")
        return {k: v.strip()}
    env = {}
    for word in re.findall(r'(?:[^\s"]|"[^"]*")+', args):
        k, _, v = word.partition("=")
        env[k] = v.strip('"')
    return env


# ---------------------------------------------------------------------------------------------
# The chroot


def mount(*args):
    subprocess.run(["mount", *args], check=True)


def umount(path):
    subprocess.run(["umount", "-l", path], check=False, stderr=subprocess.DEVNULL)


class Mounted:
    """/proc and /dev of a tree mounted for the block (this process's own mount namespace)."""

    def __init__(self, tree):
        self.tree = tree
        self.done = []

    def __enter__(self):
        for sub, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"]),
                          ("dev/pts", ["--bind", "/dev/pts"])):
            target = os.path.join(self.tree, sub)
            os.makedirs(target, exist_ok=True)
            mount(*args, target)
            self.done.append(target)
        return self

    def __exit__(self, *exc):
        for target in reversed(self.done):
            umount(target)
        self.done = []


def run_in(tree, argv, *, env=None, cwd="/", user=None, check=False, capture=True, timeout=600):
    """Runs argv chrooted in `tree`, as root or as `user` (uid, gid, groups)."""
    def enter():
        os.chroot(tree)
        os.chdir(cwd)
        if user:
            uid, gid, groups = user
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
    e = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    e.update(env or {})
    return subprocess.run(argv, preexec_fn=enter, env=e, check=check, timeout=timeout,
                          stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None, text=True)


def base_tree():
    """The debootstrap base (minbase bookworm), made once and kept in the cache."""
    key = hashlib.sha256(f"{SUITE} minbase {MIRROR}".encode()).hexdigest()[:16]
    tree = os.path.join(CACHE, f"base-{SUITE}-{key}")
    if os.path.exists(os.path.join(tree, ".complete")):
        return tree
    if os.environ.get("ENVD_LONG") != "1":
        # Making the base costs 1.5-3 min (debootstrap; more on a loaded machine), 2.5-4.7 min with
        # the stage's apt steps: the issue's ~4 minute bound. Only ENVD_LONG=1 pays it; once the
        # base is cached every run checks the image (a changed stage is replayed in 1-1.5 min).
        print(f"SKIPPED: no cached debootstrap base in {CACHE}; making one takes minutes, so only "
              "with ENVD_LONG=1 (e.g. ENVD_LONG=1 ctest -R ops.image once on this machine)", flush=True)
        sys.exit(SKIP)
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is missing (scripts/setup.sh installs it)")
    tmp = tree + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"debootstrap --variant=minbase {SUITE} {MIRROR} (cold cache)")
    r = subprocess.run(["debootstrap", "--variant=minbase", SUITE, tmp, MIRROR],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"debootstrap failed ({r.returncode}):\n{r.stdout[-4000:]}")
    # As Debian's container images: no service starts from a package's postinst.
    with open(os.path.join(tmp, "usr/sbin/policy-rc.d"), "w") as f:
        f.write("#!/bin/sh\nexit 101\n")
    os.chmod(os.path.join(tmp, "usr/sbin/policy-rc.d"), 0o755)
    # apt lists left by debootstrap: an image's start has none (RUN steps run apt-get update).
    shutil.rmtree(os.path.join(tmp, "var/lib/apt/lists"), ignore_errors=True)
    os.makedirs(os.path.join(tmp, "var/lib/apt/lists/partial"))
    open(os.path.join(tmp, ".complete"), "w").close()
    os.rename(tmp, tree)
    return tree


def replay(stage, base, envd_bin):
    """The stage replayed on a copy of `base`: cached by the stage's text up to its last RUN (what
    follows cannot change what the RUN steps did)."""
    runs = [i for i, (k, _) in enumerate(stage) if k == "RUN"]
    text = json.dumps(stage[:runs[-1] + 1] if runs else [])
    key = hashlib.sha256((os.path.basename(base) + text).encode()).hexdigest()[:16]
    tree = os.path.join(CACHE, f"stage-{key}")
    fresh = not os.path.exists(os.path.join(tree, ".complete"))
    if fresh:
        tmp = tree + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["cp", "-a", base, tmp], check=True)
        os.unlink(os.path.join(tmp, ".complete"))
    else:
        tmp = tree
        log(f"stage replayed before ({tree}): refreshing its COPY targets only")
    # What a container runtime writes at start: name resolution for the network and the hostname.
    shutil.copy("/etc/resolv.conf", os.path.join(tmp, "etc/resolv.conf"))
    with open(os.path.join(tmp, "etc/hosts"), "w") as f:
        f.write(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{socket.gethostname()}\n")
    env, cwd = {}, "/"
    with Mounted(tmp):
        for keyword, args in stage:
            if keyword == "RUN":
                if not fresh:
                    continue
                argv = json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]
                log(f"RUN {args[:100]}{'...' if len(args) > 100 else ''}")
                r = run_in(tmp, argv, env={"DEBIAN_FRONTEND": "noninteractive", **env}, cwd=cwd)
                if r.returncode != 0:
                    shutil.rmtree(tmp, ignore_errors=True) if fresh else None
                    raise RuntimeError(f"RUN failed with exit code {r.returncode}:\n{r.stdout[-6000:]}")
            elif keyword == "COPY":
                frm, srcs, dst = parse_copy(args)
                if frm is not None:
                    if srcs != ["/src/build/envd/envd"]:
                        raise ValueError(f"COPY --from={frm} {srcs}: only the envd binary is known to this check")
                    files = [envd_bin]
                else:
                    files = [os.path.join(REPO, s) for s in srcs]
                target = os.path.join(tmp, dst.lstrip("/"))
                if dst.endswith("/"):
                    os.makedirs(target, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                for f in files:
                    dest = os.path.join(target, os.path.basename(f)) if os.path.isdir(target) else target
                    # A new inode (not a rewrite): an envd left running from a killed run keeps its own.
                    shutil.copy2(f, dest + ".new")
                    os.replace(dest + ".new", dest)
            elif keyword == "ENV":
                env.update(parse_env(args))
            elif keyword == "WORKDIR":
                cwd = os.path.join(cwd, args)
                os.makedirs(os.path.join(tmp, cwd.lstrip("/")), exist_ok=True)
            elif keyword == "USER":
                if args not in ("root", "0"):
                    raise ValueError(f"USER {args}: this check runs RUN steps as root only")
            elif keyword not in KEEP:
                raise ValueError(f"{keyword}: not supported by this check (add it to tests/ops/check_image.py)")
    if fresh:
        open(os.path.join(tmp, ".complete"), "w").close()
        os.rename(tmp, tree)
        # One replayed stage is kept: older ones belong to Dockerfiles that are gone.
        for name in os.listdir(CACHE):
            if name.startswith("stage-") and os.path.join(CACHE, name) != tree:
                shutil.rmtree(os.path.join(CACHE, name), ignore_errors=True)
    return tree, env


# ---------------------------------------------------------------------------------------------
# Checks


def passwd_entry(tree, name):
    with open(os.path.join(tree, "etc/passwd")) as f:
        for line in f:
            fields = line.rstrip("\n").split(":")
            if fields[0] == name:
                return fields
    return None


def check_files(tree, stage, entrypoint):
    user = passwd_entry(tree, "user")
    if not user:
        fail("no user `user` in /etc/passwd")
        return None
    uid, gid, home, shell = int(user[2]), int(user[3]), user[5], user[6]
    if shell != "/bin/bash":
        fail(f"user's shell is {shell}, not /bin/bash")
    st = os.stat(os.path.join(tree, home.lstrip("/"))) if os.path.isdir(os.path.join(tree, home.lstrip("/"))) else None
    if home != "/home/user" or st is None or st.st_uid != uid:
        fail(f"user's home {home} missing or not owned by user")
    groups = [gid]
    with open(os.path.join(tree, "etc/group")) as f:
        for line in f:
            g = line.rstrip("\n").split(":")
            if "user" in g[3].split(","):
                groups.append(int(g[2]))
    as_user = (uid, gid, groups)
    uenv = {"HOME": home, "USER": "user", "LOGNAME": "user"}

    for prog in ("bash", "sudo", "git", "curl", "python3", "python", "tini", "socat", "ls", "env", "id"):
        r = run_in(tree, ["/bin/bash", "-c", f"command -v {prog}"], user=as_user, env=uenv)
        if r.returncode != 0:
            fail(f"`{prog}` is not on user's PATH")
    r = run_in(tree, ["sudo", "-n", "id", "-u"], user=as_user, env=uenv)
    if r.returncode != 0 or r.stdout.strip() != "0":
        fail(f"passwordless sudo for user: exit {r.returncode}, output {r.stdout.strip()!r}")
    r = run_in(tree, ["python", "-c", "import sys; print(sys.version_info[0])"], user=as_user, env=uenv)
    if r.stdout.strip() != "3":
        fail(f"`python` is not Python 3: {r.stdout.strip()!r}")
    r = run_in(tree, ["ls", "--version"], user=as_user, env=uenv)
    if "GNU coreutils" not in r.stdout:
        fail("ls is not GNU coreutils")
    for prog in ("git", "curl"):
        r = run_in(tree, [prog, "--version"], user=as_user, env=uenv)
        if r.returncode != 0:
            fail(f"`{prog} --version` exits {r.returncode}: {r.stdout[-500:]}")
    if not os.path.exists(os.path.join(tree, "etc/ssl/certs/ca-certificates.crt")):
        fail("no CA certificates (curl and git over https fail)")

    for keyword, args in stage:
        if keyword == "COPY":
            _, _, dst = parse_copy(args)
            if not os.path.exists(os.path.join(tree, dst.lstrip("/"))):
                fail(f"COPY target {dst} missing")
    if not os.access(os.path.join(tree, "usr/bin/envd"), os.X_OK):
        fail("/usr/bin/envd is not an executable in the image")
    if not entrypoint or not entrypoint[0].startswith("/"):
        fail(f"ENTRYPOINT {entrypoint!r} is not an exec-form list with an absolute program")
    elif not os.access(os.path.join(tree, entrypoint[0].lstrip("/")), os.X_OK):
        fail(f"ENTRYPOINT program {entrypoint[0]} is not in the image")
    if "/usr/bin/envd" not in entrypoint:
        fail(f"ENTRYPOINT {entrypoint!r} does not start /usr/bin/envd")
    return as_user


def die_with_parent():
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def proc_status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def start_process(port, cmd):
    """process.Process/Start over Connect JSON (server streaming); returns the stream's frames."""
    body = json.dumps({"process": {"cmd": "/bin/sh", "args": ["-c", cmd]}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/process.Process/Start",
                                 data=b"\0" + len(body).to_bytes(4, "big") + body,
                                 headers={"Content-Type": "application/connect+json",
                                          "Authorization": "Basic dXNlcjo="})  # user:
    with urllib.request.urlopen(req, timeout=30) as res:
        data = res.read()
    frames, off = [], 0
    while off + 5 <= len(data):
        n = int.from_bytes(data[off + 1:off + 5], "big")
        frames.append(json.loads(data[off + 5:off + 5 + n]))
        off += 5 + n
    return frames


def check_entrypoint(tree, entrypoint, cmd):
    """Runs ENTRYPOINT (+ CMD-like args) as a container would: new PID and mount namespaces, /proc
    of the new PID namespace mounted in the tree, chrooted."""
    port = free_port()
    argv = entrypoint + (cmd or []) + ["-port", str(port), "-no-cgroups"]
    proc_dir = os.path.join(tree, "proc")
    dev_dir = os.path.join(tree, "dev")
    # unshare forks the first program into the new PID namespace; it (tini) is PID 1 there.
    # If this script dies (ctest's timeout), unshare gets SIGKILL (PR_SET_PDEATHSIG), then the
    # namespace's PID 1 does (--kill-child), and with it everything in the namespace.
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
                          "--mount-proc=" + proc_dir, "--", "sh", "-c",
                          'mount --bind /dev "$1" && shift && exec chroot "$@"', "sh", dev_dir, tree, *argv],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": PATH}, text=True,
                         preexec_fn=die_with_parent)
    output = []
    first = None

    def pump():
        for line in p.stdout:
            output.append(line)
    import threading
    threading.Thread(target=pump, daemon=True).start()
    try:
        first = wait_until(lambda: children(p.pid), 10, "the entrypoint's first program")[0]
        wait_until(lambda: any(f"listening on 0.0.0.0:{port}" in line for line in output), 10,
                   "envd's 'listening on' line")
        st = proc_status(first)
        if st.get("NSpid", "").split()[-1:] != ["1"]:
            fail(f"the entrypoint's first program is not PID 1 in its namespace: {st.get('NSpid')}")
        name = st.get("Name", "")
        kids = children(first)
        kid_names = [proc_status(k).get("Name", "") for k in kids]
        if name == "envd":
            fail("envd is PID 1 without a reaper in front of it (use tini)")
        elif kid_names != ["envd"]:
            fail(f"PID 1 is {name} with children {kid_names}, expected envd alone")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as res:
            if res.status != 204:
                fail(f"/health answered {res.status}")
        # A process that leaves an orphan (the background sleep's parent exits at once): the orphan
        # is re-parented to PID 1, which must reap it when it ends, or it stays a zombie.
        frames = start_process(port, "sleep 0.3 & echo $!")
        out = "".join(__import__("base64").b64decode(f["event"]["data"]["stdout"]).decode()
                      for f in frames if f.get("event", {}).get("data", {}).get("stdout"))
        if not out.strip().isdigit():
            fail(f"the process did not run as expected: {frames}")
        else:
            def orphan_gone():
                procs = descendants(first)
                zombies = [c for c in procs if proc_status(c).get("State", "").startswith("Z")]
                sleeping = [c for c in procs if proc_status(c).get("Name") == "sleep"]
                return not zombies and not sleeping
            wait_until(orphan_gone, 10, "the orphan to end and be reaped (no zombie under PID 1)")
        # SIGTERM to PID 1 (docker stop): tini passes it to envd, which shuts down and exits 0.
        os.kill(first, signal.SIGTERM)
        rc = p.wait(timeout=20)
        if rc != 0:
            fail(f"after SIGTERM the entrypoint exited {rc}")
        if not any("shutting down" in line for line in output):
            fail("envd did not log its graceful shutdown after SIGTERM to PID 1")
    except Exception as e:  # noqa: BLE001 — reported with envd's output
        fail(f"entrypoint run: {e}")
    finally:
        if p.poll() is None:
            if first is not None:
                os.kill(first, signal.SIGKILL)  # PID 1 of the namespace: the kernel ends the rest
            p.kill()
            p.wait()
    if failures:
        sys.stdout.write("entrypoint output:\n" + "".join(output[-40:]))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    envd_bin = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        print("ops.image needs root (debootstrap, chroot, mounts)")
        return 1
    if os.environ.get("ENVD_IMAGE_CHECK_NS") != "1":
        # Re-run in a private mount namespace: the mounts end with the process, however it ends.
        os.environ["ENVD_IMAGE_CHECK_NS"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--", sys.executable, *sys.argv])

    started = time.monotonic()
    instructions = parse_dockerfile(open(DOCKERFILE).read())
    (_, base_image), stage = last_stage(instructions)
    base_image = base_image.split()[0]
    if base_image not in ("debian:bookworm", "debian:bookworm-slim"):
        print(f"FAIL: the runtime stage starts FROM {base_image}; this check knows debian:bookworm only")
        return 1
    stage = [(k, a) for k, a in stage]
    entrypoint = cmd = None
    for keyword, args in stage:
        if keyword == "ENTRYPOINT":
            entrypoint = json.loads(args) if args.startswith("[") else None
        elif keyword == "CMD":
            cmd = json.loads(args) if args.startswith("[") else None

    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        flock(lock, LOCK_EX)  # one check at a time on this machine (they share the cache)
        base = base_tree()
        tree, _ = replay(stage, base, envd_bin)
        log("checking the image")
        with Mounted(tree):
            check_files(tree, stage, entrypoint)
        check_entrypoint(tree, entrypoint or [], cmd)
    log(f"{len(failures)} failures, {time.monotonic() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, ValueError, subprocess.CalledProcessError) as e:
        print(f"FAIL: {e}")
        sys.exit(1)
