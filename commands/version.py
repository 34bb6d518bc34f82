"""``version``: the client's version and the engine's (the same code: there is no daemon)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from commands.parsing import OnlyVerb, Verbs
from engine import system

VERBS = Verbs()


@VERBS.flags
def _version_flags(sub: OnlyVerb) -> None:
    v = sub.add_parser("version")
    v.add_argument("-f", "--format", default="")


def version_doc() -> dict[str, Any]:
    """docker's ``version`` document: Client and Server (the engine that runs the
    commands: this same program, on the same store)."""
    doc = system.version()
    client = {**doc, "Context": "default", "Experimental": True}
    engine = {"Version": doc["Version"], "ApiVersion": doc["ApiVersion"], "MinAPIVersion": "1.12"}
    server = {
        **doc,
        "MinAPIVersion": "1.12",
        "KernelVersion": os.uname().release,
        "Experimental": False,
        "Components": [{"Name": "Engine", "Version": doc["Version"], "Details": engine}],
    }
    return {"Client": client, "Server": server}


@VERBS.command("version")
def cmd_version(args: argparse.Namespace) -> int:
    doc = version_doc()
    if args.format:
        from commands.gotemplate import render_template

        print(render_template(args.format, doc))
        return 0
    c, s = doc["Client"], doc["Server"]
    print("Client:")
    print(f" Version:           {c['Version']}")
    print(f" API version:       {c['ApiVersion']}")
    print(f" Python version:    {c['PythonVersion']}")
    print(f" OS/Arch:           {c['Os']}/{c['Arch']}")
    print(f" Context:           {c['Context']}")
    print()
    print("Server:")
    print(" Engine:")
    print(f"  Version:          {s['Version']}")
    print(f"  API version:      {s['ApiVersion']} (minimum version {s['MinAPIVersion']})")
    print(f"  Python version:   {s['PythonVersion']}")
    print(f"  OS/Arch:          {s['Os']}/{s['Arch']}")
    print(f"  Experimental:     {str(s['Experimental']).lower()}")
    return 0
