"""The official e2b Python SDK's `sandbox.git` helpers (sync `Sandbox`; they run git through
`commands.run`, as `bash -l -c`) together with `sandbox.files` writes and reads, in debug mode
(E2B_DEBUG=true, http://localhost:49983). The module holds /tmp/envd-49983.lock (ctest:
RESOURCE_LOCK port49983). Issue 8 (Tests, git item): init, clone from a local bare repo (path and
file://), add, commit, status, branches, reset, restore, pull/push to a local remote — as `root`
and as `user`.

Needs the E2B-template test machine (tests/sdk/install.sh): `git` on the PATH of every user.
Identity is configured per repository (scope `local`): root's global ~/.gitconfig on a developer
machine is left alone. The steps of one user build on each other (one history), so each user's
flow is one test."""

import os
import pwd
import secrets
import shutil
import subprocess

import pytest
from e2b import CommandExitException, GitUpstreamException

TAG = secrets.token_hex(4)
WHO = ["root", "user"]


def base(who: str) -> str:
    return f"/tmp/sdk-py-git-{TAG}" if who == "root" else f"/home/user/sdk-py-git-{TAG}"


@pytest.fixture(scope="module", autouse=True)
def cleanup():
    yield
    for who in WHO:
        shutil.rmtree(base(who), ignore_errors=True)


def assert_owned(path: str, who: str) -> None:
    assert os.stat(path).st_uid == pwd.getpwnam(who).pw_uid, f"{path} not owned by {who}"


def host_git(repo: str, *args: str) -> str:
    """git on the host (as root), to look at a repository without going through the SDK."""
    return subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", repo, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_template_environment(sbx):
    for who in WHO:
        r = sbx.commands.run("git --version && python --version && command -v sudo", user=who)
        assert r.stdout.startswith("git version "), who
        assert "Python 3." in r.stdout + r.stderr, who
    assert sbx.commands.run("sudo -n whoami", user="user").stdout.strip() == "root"


@pytest.mark.parametrize("who", WHO)
def test_git_flow(sbx, who):
    g = sbx.git
    kw = dict(user=who, timeout=30)
    d = base(who)
    remote, work, clone = f"{d}/remote.git", f"{d}/work", f"{d}/clone"

    def ident(path):
        g.configure_user(f"Test {who}", f"{who}@example.com", scope="local", path=path, **kw)

    def names(st):
        return sorted((f.name, f.status, f.staged) for f in st.file_status)

    # init: a bare remote and a work tree, owned by the user
    g.init(remote, bare=True, initial_branch="main", **kw)
    assert os.path.exists(f"{remote}/HEAD")
    assert_owned(remote, who)
    g.init(work, initial_branch="main", **kw)
    assert_owned(f"{work}/.git", who)
    ident(work)
    assert g.get_config("user.name", scope="local", path=work, **kw) == f"Test {who}"

    # files written through the SDK, then status / add / commit
    sbx.files.write_files(
        [{"path": f"{work}/README.md", "data": "# demo\n"}, {"path": f"{work}/src/app.py", "data": "print('hi')\n"}],
        user=who,
    )
    st = g.status(work, **kw)
    assert st.has_untracked
    assert names(st) == [("README.md", "untracked", False), ("src/", "untracked", False)]
    g.add(work, **kw)
    st = g.status(work, **kw)
    assert names(st) == [("README.md", "added", True), ("src/app.py", "added", True)]
    assert st.staged_count == 2
    g.commit(work, "initial commit", **kw)
    st = g.status(work, **kw)
    assert st.is_clean and st.current_branch == "main"
    assert host_git(work, "log", "-1", "--format=%an <%ae>|%s") == f"Test {who} <{who}@example.com>|initial commit"
    assert_owned(f"{work}/.git/objects", who)
    with pytest.raises(CommandExitException) as ei:
        g.commit(work, "nothing to commit", **kw)
    assert ei.value.exit_code == 1

    # push to the local bare remote
    with pytest.raises(GitUpstreamException):
        g.pull(work, **kw)
    g.remote_add(work, "origin", remote, **kw)
    assert g.remote_get(work, "origin", **kw) == remote
    g.push(work, remote="origin", branch="main", **kw)
    assert host_git(remote, "log", "-1", "--format=%s", "main") == "initial commit"
    st = g.status(work, **kw)
    assert (st.upstream, st.ahead) == ("origin/main", 0)

    # clone by path and shallow over file://
    g.clone(remote, path=clone, **kw)
    assert sbx.files.read(f"{clone}/README.md", user=who) == "# demo\n"
    assert_owned(f"{clone}/src/app.py", who)
    g.clone(f"file://{remote}", path=f"{d}/shallow", depth=1, branch="main", **kw)
    assert host_git(f"{d}/shallow", "rev-parse", "--is-shallow-repository") == "true"

    # a change in the clone, with an explicit author, pushed on its upstream, pulled into work
    ident(clone)
    sbx.files.write(f"{clone}/README.md", "# demo\nfrom the clone\n", user=who)
    assert names(g.status(clone, **kw)) == [("README.md", "modified", False)]
    g.add(clone, files=["README.md"], **kw)
    g.commit(clone, "second", author_name="Author Name", author_email="author@example.com", **kw)
    assert host_git(clone, "log", "-1", "--format=%an <%ae>") == "Author Name <author@example.com>"
    assert g.status(clone, **kw).ahead == 1
    g.push(clone, **kw)
    assert g.status(clone, **kw).ahead == 0
    g.pull(work, **kw)
    assert sbx.files.read(f"{work}/README.md", user=who) == "# demo\nfrom the clone\n"
    assert host_git(work, "log", "--format=%s", "-2") == "second\ninitial commit"

    # branches
    g.create_branch(work, "feature/x", **kw)
    b = g.branches(work, **kw)
    assert sorted(b.branches) == ["feature/x", "main"] and b.current_branch == "feature/x"
    sbx.files.write(f"{work}/feature.txt", "feature\n", user=who)
    g.add(work, **kw)
    g.commit(work, "feature work", **kw)
    g.checkout_branch(work, "main", **kw)
    assert g.branches(work, **kw).current_branch == "main"
    assert sbx.files.exists(f"{work}/feature.txt", user=who) is False
    with pytest.raises(CommandExitException):
        g.delete_branch(work, "feature/x", **kw)
    g.delete_branch(work, "feature/x", force=True, **kw)
    assert g.branches(work, **kw).branches == ["main"]

    # restore (worktree, staged) and reset (mixed, hard, to a target)
    readme = f"{work}/README.md"
    original = sbx.files.read(readme, user=who)
    sbx.files.write(readme, "scribbled\n", user=who)
    g.restore(work, paths=["README.md"], **kw)
    assert sbx.files.read(readme, user=who) == original
    sbx.files.write(readme, "staged change\n", user=who)
    g.add(work, files=["README.md"], **kw)
    g.restore(work, paths=["README.md"], staged=True, **kw)
    st = g.status(work, **kw)
    assert st.staged_count == 0 and names(st) == [("README.md", "modified", False)]
    g.add(work, **kw)
    g.reset(work, mode="mixed", **kw)
    assert g.status(work, **kw).staged_count == 0
    g.reset(work, mode="hard", **kw)
    assert g.status(work, **kw).is_clean
    assert sbx.files.read(readme, user=who) == original
    g.reset(work, mode="hard", target="HEAD~1", **kw)
    assert sbx.files.read(readme, user=who) == "# demo\n"
    assert g.status(work, **kw).behind == 1
    g.pull(work, **kw)
    assert sbx.files.read(readme, user=who) == original
    assert_owned(readme, who)
