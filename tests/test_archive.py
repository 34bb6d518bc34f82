"""save/load/import against Docker, skopeo and hostile input."""

from __future__ import annotations

import gzip
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagefmt.store import Store
from tests.conftest import Dockyard, docker, need
from tests.helpers import file_entry, oci_archive, sha, store_state, symlink_entry, tar_bytes


def test_load_of_save_keeps_the_manifest_digest(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    store = Store(dy.root)
    before = store.image("busybox")
    out = tmp_path / "bb.tar"
    dy.ok("save", "-o", str(out), "busybox")
    with tarfile.open(out) as t:
        names = t.getnames()
        [entry] = json.loads(t.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    assert entry["RepoTags"] == ["busybox:latest"]
    assert entry["Config"] == f"blobs/sha256/{before.id.hex}"
    dy.ok("rmi", "busybox")
    assert dy.ok("load", "-i", str(out)).strip() == "Loaded image: busybox:latest"
    after = Store(dy.root).image("busybox")
    assert after.manifest.digest == before.manifest.digest and after.id == before.id


def test_load_gzip_and_stdin(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    out = tmp_path / "bb.tar"
    dy.ok("save", "-o", str(out), "busybox")
    gz = tmp_path / "bb.tar.gz"
    gz.write_bytes(gzip.compress(out.read_bytes(), 1))
    dy.ok("rmi", "busybox")
    with open(gz, "rb") as f:
        r = dy.run("load", stdin=f, text=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "Loaded image: busybox:latest"


def test_save_refuses_a_terminal_and_unknown_images(dy: Dockyard) -> None:
    r = dy("save", "-o", "/tmp/never.tar", "nope")
    assert r.code == 1 and "No such image: nope" in r.err
    assert not Path("/tmp/never.tar").exists()


# ------------------------------------------------------------ hostile input ---


def _load_bytes(dy: Dockyard, tmp_path: Path, data: bytes) -> tuple[int, str]:
    f = tmp_path / "in.tar"
    f.write_bytes(data)
    r = dy("load", "-i", str(f))
    return r.code, r.err


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("corrupt", "tar"),
        ("wrong-digest", "digest mismatch"),
        ("truncated", "truncated"),
        ("dotdot", "escapes"),
        ("symlink-escape", "symlink"),
        ("unknown-media-type", "unknown layer media type"),
        ("no-manifest", "neither manifest.json nor an OCI index.json"),
    ],
)
def test_bad_archives_leave_the_store_unchanged(
    dy: Dockyard, busybox: str, tmp_path: Path, case: str, message: str
) -> None:
    good_layer = tar_bytes([file_entry("hello", b"hi")])
    data = {
        "corrupt": lambda: b"this is not a tar file at all" * 40,
        "wrong-digest": lambda: oci_archive([good_layer], digest_override={0: sha(b"other")}).replace(
            sha(good_layer)[7:].encode(), sha(b"other")[7:].encode()
        ),
        "truncated": lambda: oci_archive([tar_bytes([file_entry("big", b"x" * 100_000)])])[:60_000],
        "dotdot": lambda: oci_archive([tar_bytes([file_entry("../../etc/dockyard-test-x")])]),
        "symlink-escape": lambda: oci_archive(
            [tar_bytes([symlink_entry("evil", "/etc"), file_entry("evil/dockyard-test-x")])]
        ),
        "unknown-media-type": lambda: oci_archive([good_layer], layer_media_type="application/x-mystery"),
        "no-manifest": lambda: tar_bytes([file_entry("hello.txt")]),
    }[case]()
    before = store_state(dy.root)
    code, err = _load_bytes(dy, tmp_path, data)
    assert code != 0
    assert message in err, err
    assert err.count("\n") == 1
    assert store_state(dy.root) == before
    assert not Path("/etc/dockyard-test-x").exists()


# ------------------------------------------------------------------- skopeo ---


@pytest.mark.interop
def test_skopeo_reads_our_save_and_we_load_what_skopeo_writes(
    dy: Dockyard, busybox: str, tmp_path: Path
) -> None:
    need("skopeo")
    out = tmp_path / "bb.tar"
    dy.ok("save", "-o", str(out), "busybox:latest")
    info = json.loads(
        subprocess.run(
            ["skopeo", "inspect", f"docker-archive:{out}"], check=True, capture_output=True, text=True
        ).stdout
    )
    assert info["Layers"] and info["Os"] == "linux"
    oci = tmp_path / "oci"
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{out}", f"oci:{oci}:bb"], check=True)
    back = tmp_path / "back.tar"
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{oci}:bb", f"docker-archive:{back}:skopeo/bb:1"], check=True
    )
    assert dy.ok("load", "-i", str(back)).strip() == "Loaded image: skopeo/bb:1"
    # skopeo re-serialises the config on OCI -> docker conversion: the layers stay the same
    store = Store(dy.root)
    assert store.image("skopeo/bb:1").config.diff_ids == store.image("busybox").config.diff_ids
    ociarch = tmp_path / "oci.tar"
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{oci}:bb", f"oci-archive:{ociarch}:localhost/ociarch:2"], check=True
    )
    assert dy.ok("load", "-i", str(ociarch)).strip() == "Loaded image: localhost/ociarch:2"


# ------------------------------------------------------------------- docker ---


@pytest.mark.interop
def test_docker_loads_and_runs_our_save(dy: Dockyard, busybox: str, tmp_path: Path, docker_host: str) -> None:
    out = tmp_path / "bb.tar"
    dy.ok("tag", "busybox", "dockyard-saved/bb:1")
    dy.ok("save", "-o", str(out), "dockyard-saved/bb:1")
    r = docker(docker_host, "load", "-i", str(out))
    assert "Loaded image: dockyard-saved/bb:1" in r.stdout
    assert (
        docker(docker_host, "image", "inspect", "-f", "{{.Id}}", "dockyard-saved/bb:1").stdout.strip()
        == busybox
    )
    r = docker(
        docker_host,
        "run",
        "--rm",
        "--network",
        "none",
        "dockyard-saved/bb:1",
        "sh",
        "-c",
        "echo ran in docker; ls /bin/busybox",
    )
    assert r.stdout.split() == ["ran", "in", "docker", "/bin/busybox"]
    docker(docker_host, "rmi", "dockyard-saved/bb:1")


@pytest.mark.interop
def test_we_load_what_docker_builds_and_saves(
    dy: Dockyard, busybox: str, tmp_path: Path, docker_host: str, busybox_tar: Path
) -> None:
    docker(docker_host, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "dockyard-base:1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        'FROM dockyard-base:1\nRUN echo built > /built && rm -rf /tmp\nENV FOO=bar\nCMD ["cat", "/built"]\n'
    )
    docker(docker_host, "build", "-q", "-t", "dockyard-built:1", str(ctx))
    want_id = docker(docker_host, "image", "inspect", "-f", "{{.Id}}", "dockyard-built:1").stdout.strip()
    saved = tmp_path / "built.tar"
    docker(docker_host, "save", "-o", str(saved), "dockyard-built:1")
    assert dy.ok("load", "-i", str(saved)).strip() == "Loaded image: dockyard-built:1"
    [doc] = json.loads(dy.ok("inspect", "dockyard-built:1"))
    assert doc["Id"] == want_id  # identical config bytes
    assert doc["Config"]["Env"][-1] == "FOO=bar" and doc["Config"]["Cmd"] == ["cat", "/built"]
    docker_layers = json.loads(docker(docker_host, "image", "inspect", "dockyard-built:1").stdout)[0]
    assert doc["RootFS"]["Layers"] == docker_layers["RootFS"]["Layers"]
    store = Store(dy.root)
    img = store.image("dockyard-built:1")
    top = store.lowerdirs(img)[0]
    assert (top / "built").read_text() == "built\n"
    assert (top / "tmp").is_char_device()  # the whiteout of rm -rf /tmp, in overlay form
    docker(docker_host, "rmi", "dockyard-built:1", "dockyard-base:1")
