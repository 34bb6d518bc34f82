"""HEALTHCHECK: ``[--interval=… --timeout=… …] CMD <command>`` or ``NONE``, into the config."""

from __future__ import annotations

from typing import Any

from builder import history
from builder.errors import DockerfileError
from builder.flags import HealthcheckFlags
from builder.instructions.metadata import metadata_plan
from builder.instructions.step import Plan, StepState, config_of
from builder.parser import Instruction
from imagefmt.changes import command_form


def healthcheck(state: StepState, ins: Instruction) -> Plan:
    flags = ins.flags_as(HealthcheckFlags)
    ins.check_flag("healthcheck")
    kind, _, command = ins.args.partition(" ")
    hc: dict[str, Any]
    if kind.upper() == "NONE":
        hc = {"Test": ["NONE"]}
    elif kind.upper() != "CMD" or not command.strip():
        raise DockerfileError("HEALTHCHECK: HEALTHCHECK needs CMD <command> or NONE", ins.line)
    else:
        command = command.strip()
        form = command_form(command, shell=[])
        hc = flags.config(["CMD", *form] if form != [command] else ["CMD-SHELL", command])

    def change(doc: dict[str, Any]) -> None:
        config_of(doc)["Healthcheck"] = hc

    return metadata_plan(state, history.healthcheck(hc), change)
