"""Resource limits from the flags of run, create and update (-m, --cpus, …)."""

from __future__ import annotations

import argparse

from commands.errors import FlagError
from imagefmt import errors
from runtime.kernel.cgroups import Limits
from runtime.units import nano_cpus, ram_in_bytes


def limit_flags(p: argparse.ArgumentParser) -> None:
    """update's limit flags (run and create declare theirs among their others)."""
    for flag in ("-m", "--memory"), ("--memory-swap",), ("--cpus",), ("--cpuset-cpus",):
        p.add_argument(*flag, default="")
    for flag in ("-c", "--cpu-shares"), ("--cpu-period",), ("--cpu-quota",), ("--pids-limit",):
        p.add_argument(*flag, type=int, default=0)


def limits(args: argparse.Namespace, base: Limits | None = None) -> Limits:
    """cgroups.Limits from -m/--memory-swap/--cpus/… (unset flags keep ``base``'s)."""

    def bps(items: list[str], flag: str) -> tuple[tuple[str, int], ...]:
        out = []
        for item in items:
            path, sep, rate = item.rpartition(":")
            if not sep or not path:
                raise errors.Invalid(f"invalid argument {item!r} for {flag}: expected PATH:RATE")
            out.append((path, ram_in_bytes(rate, flag)))
        return tuple(out)

    def iops(items: list[str], flag: str) -> tuple[tuple[str, int], ...]:
        """docker's ValidateThrottleIOpsDevice, its words."""
        out = []
        for item in items:
            path, sep, rate = item.partition(":")
            if not sep:
                raise FlagError(f'invalid argument "{item}" for "{flag}" flag: bad format: {item}')
            if not path.startswith("/dev/"):
                raise FlagError(
                    f'invalid argument "{item}" for "{flag}" flag: bad format for device path: {item}'
                )
            if not rate.isdigit():
                raise FlagError(
                    f'invalid argument "{item}" for "{flag}" flag: invalid rate for device: {item}.'
                    " The correct format is <device-path>:<number>. Number must be a positive integer"
                )
            out.append((path, int(rate)))
        return tuple(out)

    swap = args.memory_swap
    return (base or Limits()).merged(
        memory=ram_in_bytes(args.memory, "-m, --memory") if args.memory else None,
        memory_swap=(-1 if swap == "-1" else ram_in_bytes(swap, "--memory-swap")) if swap else None,
        nano_cpus=nano_cpus(args.cpus) if args.cpus else None,
        cpu_shares=args.cpu_shares or None,
        cpuset_cpus=args.cpuset_cpus or None,
        cpu_period=args.cpu_period or None,
        cpu_quota=args.cpu_quota or None,
        pids_limit=args.pids_limit or None,
        read_bps=bps(getattr(args, "device_read_bps", []), "--device-read-bps") or None,
        write_bps=bps(getattr(args, "device_write_bps", []), "--device-write-bps") or None,
        read_iops=iops(getattr(args, "device_read_iops", []), "--device-read-iops") or None,
        write_iops=iops(getattr(args, "device_write_iops", []), "--device-write-iops") or None,
    )
