"""The log drivers by name, as moby's logger factory (RegisterLogDriver,
RegisterLogOptValidator, GetLogDriver, ValidateLogOpts).

A new driver is one module defining ``DRIVER = logger.Driver(...)`` and one line in
BUILTIN.  A driver's module is imported when a container names it, not before: a
container start pays for json-file alone.
"""

from __future__ import annotations

from imagefmt.errors import Unsupported
from imagefmt.records import TYPE_CHECKING
from runtime.errors import BadSpec

if TYPE_CHECKING:
    from runtime.logs.logger import Driver, LogDriver, LogInfo, LogReader

# name -> the module that defines its DRIVER
BUILTIN = {
    "json-file": "runtime.logs.jsonfile",
    "none": "runtime.logs.none",
}
DEFAULT = "json-file"

_registered: dict[str, Driver] = {}


def register(driver: Driver) -> None:
    """Make ``driver`` known by its name (replacing a driver of that name)."""
    _registered[driver.name] = driver


def get(name: str) -> Driver:
    """The driver called ``name``. Raises BadSpec, docker's words, for an unknown one."""
    driver = _registered.get(name)
    if driver is None and name in BUILTIN:
        import importlib

        driver = importlib.import_module(BUILTIN[name]).DRIVER
        register(driver)
    if driver is None:
        raise BadSpec(f'logger: no log driver named "{name}" is registered')
    return driver


def names() -> list[str]:
    """Every driver that can be named."""
    return sorted({*BUILTIN, *_registered})


def parse_options(name: str, opts: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--log-driver NAME --log-opt KEY=VALUE…``: the record's LogConfig.Config,
    checked by the driver's validator (a later KEY replaces an earlier one, as
    docker's flag map does). Raises BadSpec with docker's words."""
    driver = get(name)
    out: dict[str, str] = {}
    for item in opts:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadSpec(f"invalid key value pair format in log options: {item}")
        out[key] = value
    driver.validate(out)
    return out


def new_driver(name: str, info: LogInfo) -> LogDriver:
    """A ``name`` driver for the container ``info`` describes. Raises BadSpec."""
    return get(name).new(info)


def can_read(name: str) -> bool:
    """Whether ``logs`` can read what the ``name`` driver stored."""
    return get(name).reader is not None


def open_reader(name: str, info: LogInfo) -> LogReader:
    """A reader of what the ``name`` driver stored for the container ``info``
    describes. Raises Unsupported (docker's words) for a driver that cannot be read."""
    reader = get(name).reader
    if reader is None:
        raise Unsupported("configured logging driver does not support reading")
    return reader(info)
