"""``version``: the client's version (there is no daemon)."""

from __future__ import annotations

import argparse

from commands.parsing import OnlyVerb, Verbs
from engine import VERSION, system

VERBS = Verbs()


@VERBS.flags
def _version_flags(sub: OnlyVerb) -> None:
    v = sub.add_parser("version")
    v.add_argument("-f", "--format", default="")


@VERBS.command("version")
def cmd_version(args: argparse.Namespace) -> int:
    if args.format:
        print(args.format.replace("{{.Client.Version}}", VERSION).replace("{{.Server.Version}}", VERSION))
        return 0
    doc = system.version()
    print("Client:")
    print(f" Version:           {doc['Version']}")
    print(f" API version:       {doc['ApiVersion']}")
    print(f" Python version:    {doc['PythonVersion']}")
    print(f" OS/Arch:           {doc['Os']}/{doc['Arch']}")
    return 0
