"""The ``none`` log driver: the container's output is dropped and cannot be read back."""

from __future__ import annotations

from runtime.logs import jsonfile
from runtime.logs.drivers import Driver, LogInfo, Message


class NoLog:
    def __init__(self, info: LogInfo) -> None:
        pass

    def log(self, msg: Message) -> None:
        pass

    def close(self) -> None:
        pass


def validate(opts: dict[str, str]) -> None:
    """The json-file options, checked as json-file checks them: what dockyard has
    always accepted for none (docker's daemon takes any, its CLI none)."""
    jsonfile.check_options(opts, "none")


DRIVER = Driver("none", NoLog, validate)
