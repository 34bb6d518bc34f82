"""``build URL``: a git repository or a tarball on a web server as the build context,
resolved as docker's CLI resolves them (cli/command/image/build.go):

- a git URL (``git://…``, ``git@…``, ``github.com/…``, or an http(s) URL whose
  path ends in ``.git``), with an optional ``#ref:subdir`` fragment: the ref
  (branch, tag or commit; default the remote's HEAD) is fetched shallowly and
  checked out with its submodules, and ``subdir`` (which must stay inside the
  clone) is the context;
- any other http(s) URL is downloaded: a tar (plain or compressed) is the
  context, anything else is the Dockerfile of a build without context files.

The clone or download lives in a temporary directory removed after the build.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from builder.context import looks_like_tar
from commands.errors import UsageError
from imagefmt import errors

_GIT_SUFFIX = re.compile(r"\.git(?:#.+)?$")
MAX_DOCKERFILE = 16 << 20


def is_git_url(text: str) -> bool:
    if text.startswith(("http://", "https://")) and _GIT_SUFFIX.search(text.split("?", 1)[0]):
        return True
    return text.startswith(("git://", "github.com/", "git@"))


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def is_remote(text: str) -> bool:
    return is_git_url(text) or is_url(text)


def inside(ctx: Path, name: str) -> Path:
    """``-f name`` within a remote context (it may not leave it)."""
    path = (ctx / name).resolve()
    if not path.is_relative_to(ctx.resolve()):
        raise errors.Invalid(f"unable to prepare context: the Dockerfile {name} is outside the context")
    return path


def git_context(url: str, stack: contextlib.ExitStack) -> Path:
    """Clone ``url[#ref[:subdir]]`` into a temporary directory; return the context directory."""
    remote, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    if remote.startswith("github.com/"):
        remote = "https://" + remote
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-git-")))
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PROTOCOL_FROM_USER": "0"}

    def git(*args: str, cwd: Path | None = root) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)

    if not ref:
        done = git("clone", "-q", "--depth", "1", "--recurse-submodules", "--", remote, str(root), cwd=None)
    else:
        git("init", "-q")
        git("remote", "add", "origin", remote)
        done = git("fetch", "-q", "--depth", "1", "origin", "--", ref)
        if done.returncode != 0:  # a commit a server will not serve shallowly: all of it
            done = git("fetch", "-q", "origin")
            if done.returncode == 0:
                done = git("checkout", "-q", ref)
        else:
            done = git("checkout", "-q", "FETCH_HEAD")
        if done.returncode == 0:
            done = git("submodule", "update", "-q", "--init", "--recursive", "--depth", "1")
    if done.returncode != 0:
        detail = (
            done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"git exited {done.returncode}"
        )
        raise errors.NotFound(
            f"unable to prepare context: unable to 'git clone' to temporary context directory: {detail}"
        )
    return _subdir(root, subdir, url)


def _subdir(root: Path, subdir: str, url: str) -> Path:
    if not subdir:
        return root
    target = (root / subdir).resolve()
    if not target.is_relative_to(root.resolve()):
        raise errors.Invalid(
            f"unable to prepare context: {url}: subdirectory {subdir!r} is outside the repository"
        )
    if not target.is_dir():
        raise errors.NotFound(f"unable to prepare context: {url}: subdirectory {subdir!r} not found")
    return target


def url_context(url: str, stack: contextlib.ExitStack) -> tuple[Path | None, bytes | None]:
    """Download ``url``: (context directory, None) for a tar, (None, Dockerfile) otherwise."""
    from imagefmt.compress import open_reader
    from imagefmt.layer import extract_layer
    from registry.client.fetch import fetch

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-url-")))
    body = work / "body"
    try:
        resp = fetch(url, {})
    except errors.DockyardError as exc:
        raise type(exc)(f"unable to prepare context: unable to download remote context {url}: {exc}") from exc
    try:
        with open(body, "wb") as dst:
            while chunk := resp.read(1 << 20):
                dst.write(chunk)
    finally:
        resp.close()
    with open(body, "rb") as src:
        head = src.read(1 << 16)
    if looks_like_tar(head):
        ctx = work / "context"
        ctx.mkdir()
        with open(body, "rb") as src, open_reader(src) as r:
            extract_layer(r, ctx, mode="apply")
        return ctx, None
    if body.stat().st_size > MAX_DOCKERFILE:
        raise errors.Invalid(f"unable to prepare context: {url} is neither a tar archive nor a Dockerfile")
    return None, body.read_bytes()


def remote_context(text: str, stack: contextlib.ExitStack) -> tuple[Path | None, bytes | None]:
    """(context directory, Dockerfile content when the URL served one) for a remote context."""
    if is_git_url(text):
        return git_context(text, stack), None
    if is_url(text):
        return url_context(text, stack)
    raise UsageError(f"unable to prepare context: {text} is not a directory, a git URL or an http(s) URL")
