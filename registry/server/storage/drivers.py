"""The storage drivers by name, each made from the server's config.

A new driver is one module implementing ``driver.StorageDriver`` and one line in
:data:`DRIVERS`; tests/test_storage_drivers.py runs the driver contract on every
entry.  The server runs on ``filesystem`` (``create_app`` takes any other driver
object); ``inmemory`` lives in one process and so suits tests, not gunicorn's
several workers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from registry.server.config import Config
from registry.server.storage.driver import StorageDriver
from registry.server.storage.filesystem import FilesystemDriver
from registry.server.storage.inmemory import InMemoryDriver
from registry.server.storage.store import Storage

DRIVERS: dict[str, Callable[[Config], StorageDriver]] = {
    "filesystem": lambda config: FilesystemDriver(config.root, fsync=config.fsync),
    "inmemory": lambda config: InMemoryDriver(),
}


def open_driver(config: Config, name: str = "filesystem") -> StorageDriver:
    """The driver ``name`` made from ``config`` (the filesystem one at ``config.root``)."""
    return DRIVERS[name](config)


def filesystem_storage(root: Path, fsync: bool = True) -> Storage:
    """A :class:`Storage` on the filesystem driver at ``root`` (``registry garbage-collect``)."""
    return Storage(FilesystemDriver(root, fsync=fsync))
