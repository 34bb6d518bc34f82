"""CMD, ENTRYPOINT and SHELL: the exec (JSON) or shell form of a command, kept in the config."""

from __future__ import annotations

from typing import Any

from builder import history
from builder.errors import DockerfileError
from builder.instructions.metadata import metadata_plan
from builder.instructions.step import Plan, StepState, config_of
from builder.parser import Instruction


def _command(state: StepState, ins: Instruction) -> tuple[list[str], str]:
    """The argv (the exec form, or SHELL + the text) and how history quotes it."""
    form = ins.json_args()
    argv = form if form is not None else [*state.shell, ins.args] if ins.args else state.shell
    return argv, history.go_quote_list(argv)


def cmd(state: StepState, ins: Instruction) -> Plan:
    argv, shown = _command(state, ins)
    state.cmd_set = True

    def change(doc: dict[str, Any]) -> None:
        config_of(doc)["Cmd"] = argv

    return metadata_plan(state, f"CMD {shown}", change)


def entrypoint(state: StepState, ins: Instruction) -> Plan:
    argv: list[str] | None
    argv, shown = _command(state, ins)
    if not ins.args:  # a bare ENTRYPOINT clears it, as docker
        argv, shown = None, "[]"

    def change(doc: dict[str, Any]) -> None:
        cfg = config_of(doc)
        cfg["Entrypoint"] = argv
        if not state.cmd_set:  # docker: an ENTRYPOINT resets the CMD inherited from the base
            cfg["Cmd"] = None

    return metadata_plan(state, f"ENTRYPOINT {shown}", change)


def shell(state: StepState, ins: Instruction) -> Plan:
    form = ins.json_args()
    if not form:
        raise DockerfileError("SHELL requires the arguments to be in JSON form", ins.line)

    def change(doc: dict[str, Any]) -> None:
        config_of(doc)["Shell"] = form

    # its own history line is written with the new shell, as docker writes it
    return metadata_plan(state, f"SHELL {history.go_list(form)}", change, shell=form)
