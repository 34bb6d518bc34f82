"""ARG: declare build arguments in the stage's scope; the step records their values."""

from __future__ import annotations

from builder import history
from builder.instructions.step import Plan, StepState
from builder.lexer import split_words
from builder.parser import Instruction


def arg(state: StepState, ins: Instruction) -> Plan:
    """Each ``NAME[=default]`` is declared as it is read (a later default sees an earlier
    name).  As in docker, the step's key is its history line alone: another
    --build-arg hits here, and misses at the first step that uses the value
    (a RUN's environment, an expanded word in the config)."""
    declared: list[tuple[str, str | None]] = []
    for word in split_words(ins.args, state.escape):
        name, eq, default = word.partition("=")
        value = state.declare_arg(name, state.expand(default, ins) if eq else None)
        declared.append((name, state.expand(default, ins) if eq else None))
        state.args[name] = value
    comment = "ARG " + " ".join(f"{k}={v}" if v is not None else k for k, v in declared)
    return Plan(history.metadata(state.shell, comment), {})
