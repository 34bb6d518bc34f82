"""The storage drivers by name, each made from the server's config.

A new driver is one module implementing ``driver.StorageDriver`` and one line in
:data:`DRIVERS`; tests/test_storage_drivers.py runs the driver contract on every
entry.  The server runs on ``filesystem`` (``create_app`` takes any other driver
object); ``inmemory`` lives in one process and so suits tests, not gunicorn's
several workers; ``s3`` (``storage = "s3"`` and the ``[s3]`` table) keeps the
store in a bucket shared by any number of processes and hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from registry.server.config import Config, ConfigInvalid
from registry.server.storage.driver import StorageDriver
from registry.server.storage.filesystem import FilesystemDriver
from registry.server.storage.inmemory import InMemoryDriver
from registry.server.storage.store import Storage

DRIVERS: dict[str, Callable[[Config], StorageDriver]] = {
    "filesystem": lambda config: FilesystemDriver(config.root, fsync=config.fsync),
    "inmemory": lambda config: InMemoryDriver(),
    "s3": lambda config: _s3(config),
}


def _s3(config: Config) -> StorageDriver:
    from registry.server.storage.s3 import S3Driver  # boto3 loads only for a server on S3

    return S3Driver(config.s3)


def open_driver(config: Config, name: str | None = None) -> StorageDriver:
    """The driver ``name`` (default: the config's ``storage``) made from ``config``."""
    name = name or config.storage
    if name not in DRIVERS:
        raise ConfigInvalid(f"unknown storage driver {name!r}: one of {', '.join(sorted(DRIVERS))}")
    return DRIVERS[name](config)


def filesystem_storage(root: Path, fsync: bool = True) -> Storage:
    """A :class:`Storage` on the filesystem driver at ``root`` (``registry garbage-collect``)."""
    return Storage(FilesystemDriver(root, fsync=fsync))
