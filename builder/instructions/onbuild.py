"""ONBUILD: a trigger kept in the config, run by the stages built FROM this image."""

from __future__ import annotations

from typing import Any

from builder.errors import DockerfileError
from builder.instructions.metadata import metadata_plan
from builder.instructions.step import Plan, StepState, config_of
from builder.parser import Instruction, parse_line


def onbuild(state: StepState, ins: Instruction) -> Plan:
    trigger = parse_line(ins.args, ins.line)
    if trigger.keyword == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", ins.line)
    if trigger.keyword in ("FROM", "MAINTAINER"):
        raise DockerfileError(f"{trigger.keyword} isn't allowed as an ONBUILD trigger", ins.line)
    expression = ins.args.strip()

    def change(doc: dict[str, Any]) -> None:
        cfg = config_of(doc)
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), expression]

    return metadata_plan(state, f"ONBUILD {expression}", change)


def trigger(text: str, line: int) -> Instruction:
    """A base image's trigger as the instruction the child stage runs after its FROM."""
    ins = parse_line(text, line)
    if ins.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
        raise DockerfileError(f"{ins.keyword} isn't allowed as an ONBUILD trigger", ins.line)
    return ins
