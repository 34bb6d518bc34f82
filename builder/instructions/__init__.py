"""Dockerfile instructions, one module per instruction or family, behind one step interface.

``plan(state, ins)`` turns an instruction into a ``Plan`` (``step.py``): its
cache key material, its history line, its config change and how to make its
layer.  ``builder.stage.StageRun`` runs every plan the same way.  A new
instruction is a module here and one line in ``PLANNERS`` (and its keyword in
``builder.parser.KEYWORDS``); a new flag starts in ``builder.flags``.
"""

from __future__ import annotations

from builder.errors import DockerfileError
from builder.instructions import arg, command, copy, healthcheck, metadata, onbuild, run, workdir
from builder.instructions.step import Plan, Planner, StepState
from builder.parser import Instruction

PLANNERS: dict[str, Planner] = {
    "ADD": copy.add,
    "ARG": arg.arg,
    "CMD": command.cmd,
    "COPY": copy.copy,
    "ENTRYPOINT": command.entrypoint,
    "ENV": metadata.env,
    "EXPOSE": metadata.expose,
    "HEALTHCHECK": healthcheck.healthcheck,
    "LABEL": metadata.label,
    "MAINTAINER": metadata.maintainer,
    "ONBUILD": onbuild.onbuild,
    "RUN": run.run,
    "SHELL": command.shell,
    "STOPSIGNAL": metadata.stopsignal,
    "USER": metadata.user,
    "VOLUME": metadata.volume,
    "WORKDIR": workdir.workdir,
}  # FROM starts a stage: builder.stage


def plan(state: StepState, ins: Instruction) -> Plan:
    """``ins`` evaluated against its stage; DockerfileError for what cannot be built."""
    planner = PLANNERS.get(ins.keyword)
    if planner is None:
        raise DockerfileError(f"unknown instruction: {ins.keyword}", ins.line)
    return planner(state, ins)
