import pytest

from imagefmt.errors import NameInvalid
from imagefmt.reference import Reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
        ("user/app", "docker.io/user/app:latest", "user/app:latest"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/a/b", "localhost:5000/a/b:latest", "localhost:5000/a/b:latest"),
        ("127.0.0.1:5000/a:t", "127.0.0.1:5000/a:t", "127.0.0.1:5000/a:t"),
        ("ghcr.io/o/r/x:1", "ghcr.io/o/r/x:1", "ghcr.io/o/r/x:1"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
        (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}", f"busybox:1@{D}"),
        ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
    ],
)
def test_normalise_like_docker(text: str, full: str, familiar: str) -> None:
    ref = Reference.parse(text)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert Reference.parse(str(ref)) == ref  # the round-trip law


def test_endpoint_of_docker_hub() -> None:
    assert Reference.parse("busybox").endpoint == "registry-1.docker.io"
    assert Reference.parse("localhost:5000/x").endpoint == "localhost:5000"


def test_no_default_tag() -> None:
    assert Reference.parse("busybox", default_tag=False).tag is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " busybox",
        "busybox:",
        "Busybox",
        "a/B",
        "a//b",
        "a/../b",
        "-a",
        "a:b:c",
        "x@sha256:12",
        "a:" + "t" * 129,
        "x/" + "a" * 300,
        "a..b",
        "a/b/",
    ],
)
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(NameInvalid) as exc:
        Reference.parse(bad)
    assert "invalid reference format" in str(exc.value)
