"""imagefmt.securepath, the one resolver: symlinks planted in a root never lead out of it,
whether the kernel's openat2(RESOLVE_IN_ROOT) or the component walk does the work."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from imagefmt.securepath import Root, secure_join


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root holding escaping links, and a directory beside it that must stay untouched."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "usr/lib").mkdir(parents=True)
    outside.mkdir()
    (root / "abs").symlink_to("/../../" + str(outside).lstrip("/"))  # absolute, climbing
    (root / "rel").symlink_to("../../../../" + str(outside).lstrip("/"))
    (root / "lib").symlink_to("usr/lib")
    (root / "dangling").symlink_to("/nowhere/file")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "file").write_text("x")
    return root, outside


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("lib/x", "usr/lib/x"),
        ("/lib/../lib/x", "usr/lib/x"),
        ("../../etc/passwd", "etc/passwd"),
        ("dangling", "nowhere/file"),
        ("missing/../usr", "usr"),
        ("file/below", "file/below"),
        ("loop1/x", "loop1/x"),
    ],
)
def test_secure_join_resolves_inside_the_root(tree: tuple[Path, Path], path: str, expected: str) -> None:
    root, _ = tree
    assert secure_join(str(root), path) == str(root / expected)


def test_secure_join_never_leaves_the_root(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    for link in ("abs", "rel"):
        got = secure_join(str(root), f"{link}/x")
        assert got == str(root) + str(outside) + "/x"  # the link's target, taken inside the root
        assert not got.startswith(str(outside))


def test_make_creates_inside_the_root_through_escaping_links(tree: tuple[Path, Path], resolver: str) -> None:
    root, outside = tree
    with Root.open(root) as r:
        for link in ("abs", "rel"):
            fd = r.make(f"{link}/made/dir", is_dir=True)
            try:
                assert r.host_path(fd) == str(root) + str(outside) + "/made/dir"
            finally:
                os.close(fd)
        fd = r.make("dangling", is_dir=False)
        os.close(fd)
    assert list(outside.iterdir()) == []
    assert (root / "nowhere/file").is_file()


def test_make_uses_what_exists(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with Root.open(root) as r:
        fd = r.make("lib", is_dir=True)
        assert r.host_path(fd) == str(root / "usr/lib")
        os.close(fd)
        fd = r.make("file", is_dir=False)
        assert r.host_path(fd) == str(root / "file")
        os.close(fd)
        assert (root / "file").read_text() == "x"  # opened, not truncated
        with pytest.raises(NotADirectoryError):
            r.make("file", is_dir=True)


def test_open_dir_follows_links_inside_and_refuses_the_rest(tree: tuple[Path, Path], resolver: str) -> None:
    root, outside = tree
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    with Root.open(root) as r:
        fd = r.open_dir(["abs"])
        try:
            assert r.host_path(fd) == str(root) + str(outside)
        finally:
            os.close(fd)
        with pytest.raises(NotADirectoryError):
            r.open_dir(["file"])
        with pytest.raises(FileNotFoundError):
            r.open_dir(["dangling"])
        with pytest.raises(OSError) as loop:
            r.open_dir(["loop1"])
        assert loop.value.errno == errno.ELOOP
