"""The container, volume and network events the runtime records in the store's journal
(imagefmt.journal), with the attributes docker's daemon gives each."""

from __future__ import annotations

from pathlib import Path

from imagefmt import journal
from runtime.container.store import Container


def container(root: Path, c: Container, action: str, **extra: str) -> None:
    """A container event: its labels, ``image`` (as the user named it) and ``name``
    (without the "/"), and ``extra`` (exitCode, signal, oldName…), as docker's
    LogContainerEventWithAttributes."""
    image = c.config.get("Image") or ""
    attrs = {**(c.config.get("Labels") or {}), "image": image, "name": c.name, **extra}
    journal.emit(root, "container", action, c.id, attrs, from_=image)


def exec_action(argv: list[str] | tuple[str, ...]) -> str:
    """What docker's exec events (``exec_create: …``, ``exec_start: …``) name: the
    entrypoint, a space, the arguments joined (``true `` for one without any)."""
    return f"{argv[0]} {' '.join(argv[1:])}"


def volume(root: Path, name: str, action: str, **extra: str) -> None:
    journal.emit(root, "volume", action, name, {"driver": "local", **extra})


def network(root: Path, net_id: str, name: str, action: str, **extra: str) -> None:
    journal.emit(root, "network", action, net_id, {"name": name, "type": "bridge", **extra})
