"""``info`` (also as ``system info``): what dockyard knows of this system."""

from __future__ import annotations

import argparse

from commands.gotemplate import render_template
from commands.output import human_size
from commands.parsing import OnlyVerb, Verbs
from engine import VERSION, system
from imagefmt.store import Store

VERBS = Verbs()


@VERBS.flags
def _info_flags(sub: OnlyVerb) -> None:
    sub.group("system").add_parser("info").add_argument("-f", "--format", default="")
    sub.add_parser("info").add_argument("-f", "--format", default="")


@VERBS.command("info", "system info")
def cmd_info(args: argparse.Namespace) -> int:
    info = system.info(Store(args.root))
    if args.format:
        print(render_template(args.format, info))
        return 0
    print("Client:")
    print(f" Version:    {VERSION}")
    print(" Context:    default (daemonless)")
    print()
    print("Server:")
    print(f" Containers: {info['Containers']}")
    print(f"  Running: {info['ContainersRunning']}")
    print(f"  Paused: {info['ContainersPaused']}")
    print(f"  Stopped: {info['ContainersStopped']}")
    print(f" Images: {info['Images']}")
    print(f" Server Version: {VERSION}")
    print(f" Storage Driver: {info['Driver']}")
    print(f" Cgroup Version: {info['CgroupVersion']}")
    print(f" Kernel Version: {info['KernelVersion']}")
    print(f" Operating System: {info['OperatingSystem']}")
    print(f" OSType: {info['OSType']}")
    print(f" Architecture: {info['Architecture']}")
    print(f" CPUs: {info['NCPU']}")
    print(f" Total Memory: {human_size(int(info['MemTotal']))}")
    print(f" Name: {info['Name']}")
    print(f" Docker Root Dir: {info['DockerRootDir']}")
    return 0
