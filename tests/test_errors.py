"""The one error table: every class's code, status and exit code, the round trip
server -> wire -> client for every class, and the CLI's exit codes (docker's)."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import cli
from engine.errors import FilterSyntax
from imagefmt import errors
from registry import protocol

PACKAGES = ("imagefmt", "registry", "runtime", "builder", "engine")


def all_error_classes() -> list[type[errors.DockyardError]]:
    """Every DockyardError class of our packages (each module imported, so leaf classes count)."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(info.name)
    found: list[type[errors.DockyardError]] = [errors.DockyardError]
    todo = [errors.DockyardError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


CLASSES = all_error_classes()


def instance(cls: type[errors.DockyardError]) -> errors.DockyardError:
    """An instance whatever the class's own constructor takes."""
    exc = cls.__new__(cls)
    errors.DockyardError.__init__(exc, "something failed", {"digest": "sha256:ab"})
    return exc


def owns_its_wire(cls: type[errors.DockyardError]) -> bool:
    return cls is errors.DockyardError or "code" in cls.__dict__ or "status" in cls.__dict__


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_round_trip(cls: type[errors.DockyardError]) -> None:
    """Server renders, client parses: the same class for every class that declares
    its pair, else the class that owns the pair it inherits (same code, status, exit)."""
    exc = instance(cls)
    body = json.dumps(protocol.error_body(exc)).encode()
    back = protocol.error_from_response(protocol.status_for(exc), body, "push x")
    assert back.message == "push x: something failed" and back.detail == {"digest": "sha256:ab"}
    if owns_its_wire(cls):
        assert type(back) is cls
    else:
        assert issubclass(cls, type(back)), (cls, type(back))
    assert (type(back).code, type(back).status) == (cls.code, cls.status)
    if owns_its_wire(cls) or "exit_code" not in cls.__dict__:
        assert type(back).exit_code == cls.exit_code


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_cli_exit_code_is_dockers(cls: type[errors.DockyardError]) -> None:
    """docker's CLI exits 1 for any error it reports, whatever its kind (``docker rmi
    nosuch``, a refused login, an invalid reference: all 1).  (run's 125/126/127, a
    failed RUN's status and the CLI's flag errors: tests/test_cli_errors.py.)"""
    flag_error = issubclass(cls, FilterSyntax)  # refused while parsing the flag, as docker's CLI: 125
    assert cli.exit_code_for(instance(cls)) == (125 if flag_error else 1)


def test_the_drifted_entries() -> None:
    """What the five tables disagreed on, now distribution's (errcode/register.go)."""
    invalid = errors.Invalid("bad scope")
    assert (invalid.code, protocol.status_for(invalid)) == ("UNKNOWN", 400)  # was UNSUPPORTED
    conflict = errors.Conflict("in use")
    assert (conflict.code, protocol.status_for(conflict)) == ("UNKNOWN", 409)  # was DENIED
    for cls in (errors.TagInvalid, protocol.PaginationInvalid):  # came back as bare DockyardError
        body = json.dumps(protocol.error_body(cls("x"))).encode()
        assert type(protocol.error_from_response(400, body)) is cls
    assert errors.class_for("UNKNOWN", 403) is errors.Denied  # UNKNOWN classifies nothing: the status does
    assert errors.class_for("RANGE_INVALID", 416) is errors.RangeInvalid  # distribution's code for it
    assert errors.class_for("BLOB_UPLOAD_INVALID", 404) is errors.BlobUploadInvalid  # distribution's status
    assert errors.class_for(None, 502) is errors.DockyardError


def test_a_pair_has_one_owner() -> None:
    with pytest.raises(TypeError, match="already belongs to Denied"):

        class Refused(errors.DockyardError):
            code = "DENIED"
            status = 403

    class Precise(errors.Denied):  # a subclass may refine its base's pair
        status = 403

    try:
        assert errors.class_for("DENIED", 403) is Precise
    finally:
        errors.WIRE[("DENIED", 403)] = errors.Denied
        errors.BY_CODE["DENIED"] = errors.Denied
