"""Bounded fuzzing (hypothesis) of the parsers that take hostile input: manifests
and indexes (imagefmt.manifest), Dockerfiles (builder.parser) and image references
(imagefmt.reference).  Whatever the input, only our own errors (DockyardError
subclasses) may escape.  The budget is small and the runs derandomized, so CI
sees the same examples every time; raise ``max_examples`` locally to search more."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder import parser as dockerfile
from imagefmt.errors import DockyardError
from imagefmt.manifest import Descriptor, Index, Manifest, Platform, detect_media_type, parse_any
from imagefmt.reference import Reference

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DIGEST = "sha256:" + "a" * 64
MEDIA_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.config.v1+json",
    "application/json",
    "",
]

# Any JSON value, small.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field's well-typed value, or any JSON value at all."""
    return st.one_of(value, json_values)


descriptors = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": maybe(st.sampled_from(MEDIA_TYPES)),
        "digest": maybe(st.sampled_from([DIGEST, "sha512:" + "b" * 128, "sha256:xyz", ""])),
        "size": maybe(st.integers(-1, 2**40)),
        "annotations": maybe(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)),
        "urls": maybe(st.lists(st.text(max_size=10), max_size=2)),
        "platform": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "os": maybe(st.sampled_from(["linux", "windows"])),
                    "architecture": maybe(st.sampled_from(["amd64", "arm64"])),
                    "variant": maybe(st.just("v8")),
                    "os.features": maybe(st.lists(st.text(max_size=5), max_size=2)),
                },
            )
        ),
        "artifactType": maybe(st.text(max_size=10)),
    },
)

documents = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": maybe(st.sampled_from([1, 2, 3])),
        "mediaType": maybe(st.sampled_from(MEDIA_TYPES)),
        "config": maybe(descriptors),
        "layers": maybe(st.lists(maybe(descriptors), max_size=3)),
        "manifests": maybe(st.lists(maybe(descriptors), max_size=3)),
        "subject": maybe(descriptors),
        "annotations": maybe(st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
        "artifactType": maybe(st.text(max_size=10)),
    },
)


VALID = [
    {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPES[0],
        "config": {"mediaType": MEDIA_TYPES[4], "digest": DIGEST, "size": 2, "annotations": {"a": "b"}},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST, "size": 3,
                    "urls": ["http://example.com/l"]}],
        "subject": {"mediaType": MEDIA_TYPES[0], "digest": DIGEST, "size": 4},
        "annotations": {"k": "v"},
    },
    {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPES[1],
        "manifests": [{"mediaType": MEDIA_TYPES[0], "digest": DIGEST, "size": 5,
                       "platform": {"os": "linux", "architecture": "arm64", "variant": "v8",
                                    "os.features": ["x"]}}],
        "annotations": {"k": "v"},
    },
]  # fmt: skip
DESCRIPTOR_KEYS = ["mediaType", "digest", "size", "annotations", "platform", "urls", "artifactType", "data"]


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, and the descriptor keys it could gain."""
    out: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        keys = [*value, *(DESCRIPTOR_KEYS if "digest" in value else ["subject", "artifactType"])]
        out += [(value, k) for k in dict.fromkeys(keys)]
        for v in value.values():
            out += _slots(v)
    elif isinstance(value, list):
        out += [(value, i) for i in range(len(value))]
        for v in value:
            out += _slots(v)
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest or index with one to three fields set to any JSON value or removed."""
    doc: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from(_slots(doc)))
        if isinstance(container, dict) and draw(st.booleans()) and key in container:
            del container[key]
        else:
            container[key] = draw(json_values)
    return doc


def parse_everything(raw: bytes, media_type: str) -> None:
    """Every manifest entry point; our errors are the expected outcome for bad input."""
    for parse in (parse_any, Manifest.parse, Index.parse, detect_media_type):
        try:
            parsed = parse(raw, media_type)
        except DockyardError:
            continue
        if isinstance(parsed, Manifest | Index):
            assert parsed.raw == raw
            for d in parsed.blobs() if isinstance(parsed, Manifest) else parsed.manifests:
                Descriptor.from_json(d.to_json())  # what we parsed, we can write and read back


@FUZZ
@given(documents, st.sampled_from(MEDIA_TYPES))
def test_manifest_documents(doc: dict[str, Any], media_type: str) -> None:
    parse_everything(json.dumps(doc).encode(), media_type)


@FUZZ
@given(mutated_documents(), st.sampled_from(MEDIA_TYPES))
def test_manifest_mutations(doc: dict[str, Any], media_type: str) -> None:
    parse_everything(json.dumps(doc).encode(), media_type)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode), st.sampled_from(MEDIA_TYPES))
def test_manifest_bytes(raw: bytes, media_type: str) -> None:
    parse_everything(raw, media_type)


@FUZZ
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":', '{"manifests":[']))
def test_manifest_nesting(depth: int, opener: str) -> None:
    parse_everything((opener * depth).encode(), "")


@FUZZ
@given(maybe(descriptors))
def test_descriptor(doc: Any) -> None:
    try:
        Descriptor.from_json(doc)
    except DockyardError:
        pass


@FUZZ
@given(st.text(max_size=40))
def test_platform_text(text: str) -> None:
    try:
        Platform.parse(text)
    except DockyardError:
        pass


# ------------------------------------------------------------ references ---

reference_alphabet = st.sampled_from(list("abcAZ09._-/:@+ ") + ["sha256:", "a" * 64, "localhost", ":5000"])
references = st.lists(reference_alphabet, max_size=20).map("".join) | st.text(max_size=80)


@FUZZ
@given(references, st.booleans())
def test_reference(text: str, default_tag: bool) -> None:
    try:
        ref = Reference.parse(text, default_tag)
    except DockyardError:
        return
    assert Reference.parse(str(ref), default_tag) == ref  # the round-trip law of imagefmt/reference.py


# ------------------------------------------------------------ Dockerfiles ---

KEYWORDS = [
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER", "BOGUS",
]  # fmt: skip
words = st.sampled_from(
    ["busybox", "AS", "base", "--from=base", "--chmod=755", "--mount=type=cache,target=/x", "--link",
     "$X", "${X:-y}", "\\", "<<EOF", "EOF", "[", "]", '["a",', '"b"]', "a=b", "=", "--", "#", "\t", "é", "'"]
) | st.text(max_size=6)  # fmt: skip
lines = st.one_of(
    st.tuples(st.sampled_from(KEYWORDS), st.lists(words, max_size=6)).map(lambda t: " ".join([t[0], *t[1]])),
    st.sampled_from(["# syntax=docker/dockerfile:1", "# escape=`", "# escape=\\", "", "EOF", "  \\"]),
    st.text(max_size=30),
)
dockerfiles = st.lists(lines, max_size=8).map("\n".join)


@FUZZ
@given(dockerfiles)
def test_dockerfile(text: str) -> None:
    try:
        dockerfile.parse(text)
    except DockyardError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_dockerfile_bytes(raw: bytes) -> None:
    try:
        dockerfile.parse(raw)
    except DockyardError:
        pass
