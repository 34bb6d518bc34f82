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


# The grammar as Go's regexp reads it (distribution/reference): ASCII classes, whole-string.
GO_PATH = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
GO_TAG = r"[\w][\w.-]{0,127}"
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
GO_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"


def test_the_hand_written_grammar_matches_the_regular_expressions() -> None:
    import random
    import re

    from imagefmt import reference as R

    rng = random.Random(7)
    alphabet = "ab09AZ._-_:/[]é\n٣"
    checks = [(R._is_path, GO_PATH), (R._is_tag, GO_TAG), (R._is_domain, GO_DOMAIN)]
    for _ in range(30_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        for check, pattern in checks:
            assert check(text) == bool(re.fullmatch(pattern, text, re.ASCII)), (check.__name__, text)
    assert R._is_tag("a" * 128) and not R._is_tag("a" * 129)


@pytest.mark.parametrize("text", ["busybox:tägé", "busybox:1\n", "bü/x", "localhost:5٣/x", "a__b___c/x"])
def test_refuses_what_docker_refuses(text: str) -> None:
    with pytest.raises(NameInvalid):
        Reference.parse(text)
