"""Builds that move files: stages, COPY/ADD rules, .dockerignore, mounts, whiteouts,
hostile contexts, reproducibility and the cache's housekeeping."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.peers import Server
from tests.buildhelp import build, build_ok, config, created_by, image, make_context, mounts_under, read, view
from tests.buildhelp import stat as image_stat
from tests.conftest import Dockyard

pytestmark = pytest.mark.privileged


def test_multistage_copy_from_and_skipped_stages(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = (
        "FROM busybox AS build\nRUN mkdir /out && echo built > /out/app && ln -s app /out/link\n"
        "FROM busybox AS unused\nRUN echo never-runs && exit 9\n"
        "FROM busybox\nCOPY --from=build /out/ /app/\nCOPY --from=0 /out/app /app0\n"
        "COPY --from=busybox /etc/passwd /passwd-from-image\n"
    )
    out = build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "multi")
    assert "never-runs" not in out and "Step 1/6 : FROM busybox AS build" in out
    assert read(dy, "multi", "/app/app") == "built\n" and read(dy, "multi", "/app0") == "built\n"
    link = image_stat(dy, "multi", "/app/link")
    assert link is not None and stat.S_ISLNK(link.st_mode)
    assert read(dy, "multi", "/passwd-from-image").startswith("root:")  # type: ignore[union-attr]
    out = build_ok(dy, make_context(tmp_path / "ctx", df), "--target", "build", "-t", "justbuild")
    assert "Step 2/2" in out and "Using cache" in out
    r = build(dy, tmp_path / "ctx", "--target", "nope")
    assert r.code != 0 and "failed to reach build target nope" in r.err


def test_parallel_independent_stages_print_in_order(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = (
        "FROM busybox AS a\nRUN sleep 0.3; echo from-a > /a\n"
        "FROM busybox AS b\nRUN echo from-b > /b\n"
        "FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n"
    )
    out = build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "par", "-j", "2")
    steps = [line for line in out.splitlines() if line.startswith("Step ")]
    assert steps == sorted(steps, key=lambda s: int(s.split()[1].split("/")[0]))
    assert out.index("Step 2/7") < out.index("Step 3/7 : FROM busybox AS b")
    assert read(dy, "par", "/a") == "from-a\n" and read(dy, "par", "/b") == "from-b\n"


def test_whiteouts_reach_the_next_stage_and_run(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = (
        "FROM busybox AS base\nRUN rm /etc/group && rm -r /var/www && mkdir -p /opq && touch /opq/old\n"
        "RUN rm -r /opq && mkdir /opq && touch /opq/new\n"
        "FROM base\nRUN test ! -e /etc/group && test ! -e /var/www && ls /opq > /listing\n"
    )
    build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "wh")
    v = view(dy, "wh")
    assert v.lstat("/etc/group") is None and v.lstat("/var/www") is None and v.lstat("/etc/passwd")
    assert read(dy, "wh", "/listing") == "new\n"
    r = dy.run("run", "--rm", "wh", "sh", "-c", "ls /etc; ls /opq")
    assert r.returncode == 0, r.stderr
    assert "group" not in r.stdout.split() and "passwd" in r.stdout.split() and "old" not in r.stdout


def test_copy_destinations_globs_and_owners(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"a.txt": "a", "b.txt": "b", "c.md": "c", "dir/sub/x": "x", "dir/y": "y"}
    df = (
        "FROM busybox\nWORKDIR /w\nCOPY *.txt ./txt/\nCOPY dir /copied\nCOPY dir/ /copied2/\n"
        "COPY a.txt /renamed\nCOPY --chown=nobody:www-data --chmod=640 c.md relative/\n"
        "COPY --chown=33 a.txt /by-uid\nCOPY --chmod=u+x,go-r b.txt /sym\n"
        "RUN ln -s /real /linkdir && mkdir /real\nCOPY a.txt /linkdir/\n"
    )
    build_ok(dy, make_context(tmp_path / "ctx", df, files), "-t", "dests")
    v = view(dy, "dests")
    assert read(dy, "dests", "/w/txt/a.txt") == "a" and read(dy, "dests", "/w/txt/b.txt") == "b"
    assert read(dy, "dests", "/copied/sub/x") == "x" and read(dy, "dests", "/copied2/y") == "y"
    assert v.lstat("/copied/dir") is None
    assert read(dy, "dests", "/renamed") == "a"
    st = image_stat(dy, "dests", "/w/relative/c.md")
    assert st is not None and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 33, 0o640)
    st = image_stat(dy, "dests", "/by-uid")
    assert st is not None and (st.st_uid, st.st_gid) == (33, 33)
    st = image_stat(dy, "dests", "/sym")
    assert st is not None and stat.S_IMODE(st.st_mode) == 0o700
    assert read(dy, "dests", "/real/a.txt") == "a"  # followed the image's symlink, inside the image
    st = image_stat(dy, "dests", "/w/txt/a.txt")
    assert st is not None and (st.st_uid, st.st_gid) == (0, 0)
    r = build(dy, make_context(tmp_path / "bad", "FROM busybox\nCOPY a.txt b.txt /notadir\n", files))
    assert r.code != 0 and "the destination must be a directory and end with a /" in r.err
    r = build(dy, make_context(tmp_path / "bad2", "FROM busybox\nCOPY --chown=ghost a.txt /x\n", files))
    assert r.code != 0 and "can't find uid for user ghost" in r.err
    r = build(dy, make_context(tmp_path / "bad3", "FROM busybox\nCOPY *.none /x/\n", files))
    assert r.code != 0 and "no source files were specified" in r.err


def test_dockerignore(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        ".dockerignore": "*.log\n!keep.log\nsecret/\n**/*.tmp\n",
        "app.py": "print()",
        "debug.log": "no",
        "keep.log": "yes",
        "secret/key": "no",
        "src/a.tmp": "no",
        "src/b.py": "yes",
    }
    build_ok(dy, make_context(tmp_path / "ctx", "FROM busybox\nCOPY . /ctx/\n", files), "-t", "ign")
    v = view(dy, "ign")
    names = sorted(rel for rel, _ in v.walk(v.resolve("/ctx")))
    assert names == [".dockerignore", "Dockerfile", "app.py", "keep.log", "src", "src/b.py"]
    r = build(dy, make_context(tmp_path / "ctx", "FROM busybox\nCOPY debug.log /\n", files))
    assert r.code != 0 and "file not found in build context or excluded by .dockerignore" in r.err
    # <Dockerfile>.dockerignore beside the Dockerfile wins over the context's
    (tmp_path / "ctx/other.Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
    (tmp_path / "ctx/other.Dockerfile.dockerignore").write_text("*\n!app.py\n")
    build_ok(dy, tmp_path / "ctx", "-f", str(tmp_path / "ctx/other.Dockerfile"), "-t", "ign2")
    v = view(dy, "ign2")
    assert sorted(rel for rel, _ in v.walk(v.resolve("/ctx"))) == ["app.py"]


def test_hostile_context(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nCOPY evil /evil\nCOPY linkdir/ /ld/\n")
    os.symlink("/etc/shadow", ctx / "evil")
    (ctx / "linkdir").mkdir()
    os.symlink("/etc/shadow", ctx / "linkdir/inner")
    # a link named as the source is followed as docker does, with the context as "/"
    r = build(dy, ctx)
    assert r.code == 1 and "stat evil: file does not exist" in r.err
    (ctx / "etc").mkdir()
    (ctx / "etc/shadow").write_text("inside the context\n")
    build_ok(dy, ctx, "-t", "hostile")
    v = view(dy, "hostile")
    assert v.read_bytes("/evil") == b"inside the context\n"
    found = v.lstat("/ld/inner")  # a link below a copied directory stays a link
    assert found is not None and stat.S_ISLNK(found.st.st_mode)
    assert os.readlink(found.host) == b"/etc/shadow"
    r = build(dy, make_context(tmp_path / "c2", "FROM busybox\nCOPY ../x /x\n"))
    assert r.code != 0 and "forbidden path outside the build context: ../x ()" in r.err
    # a symlinked parent directory is resolved inside the context, never on the host
    ctx3 = make_context(tmp_path / "c3", "FROM busybox\nCOPY up/shadow /s\n")
    os.symlink("/etc", ctx3 / "up")
    r = build(dy, ctx3)
    assert r.code != 0 and "file not found in build context" in r.err


def test_add_archives_and_urls(dy: Dockyard, busybox: str, tmp_path: Path, web: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("pkg/hello")
        info.size = 5
        info.uid = 7
        t.addfile(info, io.BytesIO(b"hello"))
    files: dict[str, str | bytes] = {
        "pkg.tar.gz": gzip.compress(buf.getvalue()),
        "plain.gz": gzip.compress(b"x"),
    }
    df = (
        "FROM busybox\nADD pkg.tar.gz /opt/\nCOPY pkg.tar.gz /kept.tgz\nADD plain.gz /plain.gz\n"
        f"ADD {web}/file.txt /dl/\nADD --checksum=sha256:{'a' * 64} {web}/file.txt /never\n"
    )
    r = build(dy, make_context(tmp_path / "ctx", df, files), "-t", "add")
    assert r.code != 0 and "checksum mismatch" in r.err
    df = df.rsplit("ADD --checksum", 1)[0]
    build_ok(dy, make_context(tmp_path / "ctx", df, files), "-t", "add")
    assert read(dy, "add", "/opt/pkg/hello") == "hello"
    assert image_stat(dy, "add", "/opt/pkg/hello").st_uid == 7  # type: ignore[union-attr]
    assert image_stat(dy, "add", "/kept.tgz") is not None
    assert image_stat(dy, "add", "/plain.gz") is not None  # gzip but not a tar: copied as is
    st = image_stat(dy, "add", "/dl/file.txt")
    assert st is not None and stat.S_IMODE(st.st_mode) == 0o600
    assert read(dy, "add", "/dl/file.txt") == "served\n"
    r = build(dy, make_context(tmp_path / "c2", f"FROM busybox\nCOPY {web}/file.txt /x\n"))
    assert r.code != 0 and "source can't be a URL for COPY" in r.err


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "file.txt").write_text("served\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_run_mounts(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    df = (
        "FROM busybox AS data\nRUN mkdir /d && echo from-stage > /d/f\n"
        "FROM busybox\n"
        "RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log && "
        "wc -l < /var/cache/app/log > /cache-lines\n"
        "RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test -e /scratch/x\n"
        "RUN --mount=type=secret,id=token cat /run/secrets/token > /leaked-secret-length && "
        "stat -c %a /run/secrets/token > /secret-mode\n"
        "RUN --mount=type=bind,from=data,source=/d,target=/mnt/d cp /mnt/d/f /from-bind\n"
        "RUN --mount=type=bind,source=ctxfile,target=/c cp /c /from-context\n"
    )
    ctx = make_context(tmp_path / "ctx", df, {"ctxfile": "ctx\n"})
    out = build_ok(dy, ctx, "-t", "mnt", "--secret", f"id=token,src={secret}")
    assert "s3cr3t" not in out
    assert read(dy, "mnt", "/cache-lines") == "1\n"
    assert read(dy, "mnt", "/secret-mode") == "400\n"
    assert read(dy, "mnt", "/from-bind") == "from-stage\n" and read(dy, "mnt", "/from-context") == "ctx\n"
    v = view(dy, "mnt")
    for gone in ("/var/cache/app", "/scratch", "/run/secrets", "/mnt/d", "/c"):
        assert v.lstat(gone) is None, gone
    assert all("s3cr3t" not in c for c in created_by(dy, "mnt"))
    build_ok(dy, ctx, "-t", "mnt", "--no-cache", "--secret", f"id=token,src={secret}")
    assert read(dy, "mnt", "/cache-lines") == "2\n"  # the cache mount outlived the first build
    r = build(dy, make_context(tmp_path / "c2", "FROM busybox\nRUN --mount=type=secret,id=x,required true\n"))
    assert r.code != 0 and "secret x is required" in r.err
    assert not mounts_under(tmp_path) and not list((dy.root / "tmp").iterdir())


def test_source_date_epoch_gives_identical_images(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = "FROM busybox\nRUN echo data > /f && mkdir /d\nCOPY a /a\nENV X=1\n"
    ctx = make_context(tmp_path / "ctx", df, {"a": "a"})
    os.utime(ctx / "a", (2_000_000_000, 2_000_000_000))  # later than the epoch: clamped
    first = build_ok(dy, ctx, "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    second = build_ok(dy, ctx, "-q", "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
    assert first == second
    img = image(dy, first.strip())
    assert img.config.created == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in img.config.history[1:]} == {"2023-11-14T22:13:20Z"}
    st = image_stat(dy, first.strip(), "/a")
    assert st is not None
    third = build_ok(dy, ctx, "-q")  # SOURCE_DATE_EPOCH is part of every step's key
    assert third != first


def test_cache_from_reuses_another_images_steps(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = "FROM busybox\nRUN echo one > /one\nENV A=1\nRUN echo two > /two\n"
    ctx = make_context(tmp_path / "ctx", df)
    build_ok(dy, ctx, "-t", "src")
    saved = tmp_path / "src.tar"
    dy.ok("save", "-o", str(saved), "src", "busybox")
    other = Dockyard(tmp_path / "other-store", dy._capsys)
    other.ok("load", "-i", str(saved))
    out = build_ok(other, ctx, "--cache-from", "src", "-t", "again")
    assert out.count("Using cache") == 3
    assert image(other, "again").config.diff_ids == image(dy, "src").config.diff_ids
    assert read(other, "again", "/two") == "two\n"


def test_builder_prune_and_system_df(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = "FROM busybox\nRUN --mount=type=cache,target=/c echo x > /c/x\nRUN echo a > /a\nRUN echo b > /b\n"
    build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "pr")
    df_out = dy.ok("system", "df")
    row = next(line for line in df_out.splitlines() if line.startswith("Build Cache"))
    assert int(row.split()[2]) >= 3
    out = dy.ok("builder", "prune", "-a", "-f")
    assert "Deleted build cache objects:" in out and "Total reclaimed space:" in out
    assert read(dy, "pr", "/b") == "b\n"  # the tagged result survives
    assert dy.ok("images", "-aq").split() == dy.ok("images", "-q").split()
    assert not list((dy.root / "buildcache/mounts").iterdir())
    out = build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "pr")
    assert "Using cache" not in out
    assert config(dy, "pr")["Env"]


def test_example_app_builds_and_serves(dy: Dockyard, busybox: str) -> None:
    example = Path(__file__).resolve().parent.parent / "fixtures/example"
    build_ok(dy, example, "-t", "example", "--build-arg", "VERSION=9.9")
    cfg = config(dy, "example")
    assert cfg["User"] == "www-data" and cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert read(dy, "example", "/var/www/README.md") is None  # .dockerignore'd
    r = dy.run("run", "--rm", "example", "sh", "-c", "httpd -p 8080 -h /var/www && wget -qO- 127.0.0.1:8080")
    assert r.returncode == 0, r.stderr
    assert "<h1>Built by dockyard</h1>" in r.stdout and "version 9.9" in r.stdout


def test_copy_link_reuses_its_layer_on_another_base(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"app/a": "a\n", "app/b": "b\n"}
    ctx = make_context(tmp_path / "one", "FROM busybox\nCOPY --link app/ /opt/app/\n", files)
    build_ok(dy, ctx, "-t", "link1")
    ctx2 = make_context(
        tmp_path / "two", "FROM busybox\nRUN echo base > /base\nCOPY --link app/ /opt/app/\n", files
    )
    build_ok(dy, ctx2, "-t", "link2")
    one, two = image(dy, "link1"), image(dy, "link2")
    assert one.config.diff_ids[-1] == two.config.diff_ids[-1]  # the same layer, on two parents
    assert len(list((dy.root / "buildcache/layers").iterdir())) == 1
    assert read(dy, "link2", "/opt/app/b") == "b\n" and read(dy, "link2", "/base") == "base\n"


def test_a_failing_parallel_stage_stops_the_build(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = (
        "FROM busybox AS a\nRUN sleep 0.5; echo a-done\n"
        "FROM busybox AS b\nRUN echo b-fails; exit 4\n"
        "FROM busybox\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n"
    )
    r = build(dy, make_context(tmp_path / "ctx", df), "-t", "never")
    assert r.code == 4 and "returned a non-zero code: 4" in r.err
    assert r.out.index("a-done") < r.out.index("Step 3/7") < r.out.index("b-fails")  # stage by stage
    assert "Step 5/7" not in r.out and dy("inspect", "never").code != 0


@pytest.mark.interop
def test_missing_base_is_pulled(dy: Dockyard, busybox: str, tmp_path: Path, ours: Server) -> None:
    name = f"{ours.host}/build/busybox:pulled"
    dy.ok("tag", "busybox", name)
    dy.ok("push", "-q", name)
    fresh = Dockyard(tmp_path / "fresh-store", dy._capsys)
    ctx = make_context(tmp_path / "ctx", f"FROM {name}\nRUN echo on-pulled > /p\n")
    out = build_ok(fresh, ctx, "-t", "onpulled")
    assert f"Step 1/2 : FROM {name}\npulled: Pulling from build/busybox\n" in out
    assert "Status: Downloaded newer image for" in out
    assert read(fresh, "onpulled", "/p") == "on-pulled\n"
    out = build_ok(fresh, ctx, "--pull")
    assert "Status: Image is up to date for" in out and "Using cache" in out


def test_fetch_callback_streams_and_raises_our_errors(web: str) -> None:
    from imagefmt.errors import NotFound
    from registry.client.fetch import fetch

    with fetch(f"{web}/file.txt", {}) as resp:
        assert resp.status == 200 and resp.length == 7 and resp.url == f"{web}/file.txt"
        assert resp.read(3) == b"ser" and resp.read() == b"ved\n" and resp.read(1) == b""
        modified = resp.last_modified
    assert modified
    with fetch(f"{web}/file.txt", {"If-Modified-Since": modified}) as resp:
        assert resp.status == 304 and resp.read() == b""
    with pytest.raises(NotFound, match="^HTTP 404$"):
        fetch(f"{web}/missing", {})


def test_bind_mount_from_a_stage_keys_on_its_content(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    """A ``RUN --mount=type=bind,from=stage`` (rw or not) hits when the stage gained an
    unrelated step, misses when the mounted files change (as COPY --from), and a
    ``from=$var`` is refused with BuildKit's words."""
    final = (
        "FROM busybox\n"
        "RUN --mount=type=bind,from=src,source=/d,target=/m,rw echo x >> /m/f && cat /m/f > /copy\n"
        "RUN --mount=type=bind,from=src,source=/d,target=/m cat /m/f > /copy-ro\n"
    )
    ctx = make_context(tmp_path / "ctx", "FROM busybox AS src\nRUN mkdir /d && echo one > /d/f\n" + final)
    build_ok(dy, ctx, "-t", "m1")
    assert read(dy, "m1", "/copy") == "one\nx\n" and read(dy, "m1", "/copy-ro") == "one\n"
    make_context(ctx, "FROM busybox AS src\nRUN mkdir /d && echo one > /d/f\nRUN echo other > /o\n" + final)
    out = build_ok(dy, ctx, "-t", "m2")
    assert out.count(" ---> Using cache") == 3  # RUN mkdir, and both mounts' RUNs
    make_context(ctx, "FROM busybox AS src\nRUN mkdir /d && echo two > /d/f\n" + final)
    build_ok(dy, ctx, "-t", "m3")
    assert read(dy, "m3", "/copy") == "two\nx\n" and read(dy, "m3", "/copy-ro") == "two\n"

    make_context(ctx, "FROM busybox AS src\nFROM busybox\nARG S=src\nRUN --mount=from=$S,target=/m true\n")
    r = build(dy, ctx)
    assert r.code == 1 and "'from' doesn't support variable expansion, define alias stage instead" in r.err


def test_copy_heredoc_escapes_as_buildkit(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    """BuildKit's testCopyHeredocSpecialSymbols and testHeredocVarSubstitution: an unquoted
    ``COPY <<EOF`` body takes the escape token's next character as it is and keeps
    quotes; a quoted one is copied as written."""
    bodies = {
        "quotefile": ('"quotes in file"', '"quotes in file"\n'),
        "slashfile1": ("\\", "\n"),
        "slashfile2": ("\\\\", "\\\n"),
        "slashfile3": ("\\$", "$\n"),
        "q1": ("Hello '${name}'!", "Hello 'world'!\n"),
        "q2": ('Hello "${name}"!', 'Hello "world"!\n'),
    }
    raw = {
        "rawslashfile1": ("\\", "\\\n"),
        "rawslashfile2": ("\\\\", "\\\\\n"),
        "rawslashfile3": ("\\$", "\\$\n"),
    }
    text = "FROM busybox\nARG name=world\n"
    text += "".join(f"COPY <<EOF /d/{n}\n{body}\nEOF\n" for n, (body, _) in bodies.items())
    text += "".join(f'COPY <<"EOF" /d/{n}\n{body}\nEOF\n' for n, (body, _) in raw.items())
    build_ok(dy, make_context(tmp_path / "ctx", text), "-t", "heredocs")
    for n, (_, want) in {**bodies, **raw}.items():
        assert read(dy, "heredocs", f"/d/{n}") == want, n
