"""WORKDIR: the config's WorkingDir, and the directory made when the image lacks it."""

from __future__ import annotations

import posixpath
from typing import Any

from builder import copier, history
from builder.commit import NewLayer
from builder.errors import DockerfileError
from builder.instructions.step import LayerJob, Plan, StepState, config_of, write_copy_plan
from builder.parser import Instruction


def workdir(state: StepState, ins: Instruction) -> Plan:
    path = state.expand(ins.args, ins)
    value = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))

    def change(doc: dict[str, Any]) -> None:
        config_of(doc)["WorkingDir"] = value

    def make_layer(job: LayerJob) -> NewLayer | None:
        """The missing directories (with their parents' attributes), or no layer."""
        view = job.state.view(job.state.image)
        parts = view.resolve(value)
        found = view.lookup(parts)[0]
        if found is not None and not found.is_dir:
            raise DockerfileError(f"WORKDIR {value}: not a directory", ins.line)
        if found is not None:
            return None
        where = copier.Placement("/" + "/".join(parts), True, view, None, False)
        plan = copier.CopyPlan()
        copier.parents(plan, parts, where, set(), ins.line)
        return write_copy_plan(job.state, plan)

    # whether the directory must be made follows from the parent image, already in the key
    key = {"author": state.doc.get("author")}
    return Plan(history.nop(state.shell, f"WORKDIR {value}"), key, change, make_layer)
