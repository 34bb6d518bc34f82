"""ENV, LABEL, MAINTAINER, EXPOSE, VOLUME, USER and STOPSIGNAL: steps that only edit the config.

Each commits an image with an empty layer and docker's ``#(nop)`` history
line; its key holds the config after the change and the author.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from builder import history
from builder.errors import DockerfileError
from builder.instructions.step import Plan, StepState, config_of
from builder.lexer import split_words
from builder.parser import Instruction
from imagefmt.changes import set_env

_SIGNALS = {
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
    "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF",
    "WINCH", "IO", "POLL", "PWR", "SYS",
}  # fmt: skip


def metadata_plan(
    state: StepState,
    comment: str,
    change: Callable[[dict[str, Any]], None],
    shell: list[str] | None = None,
    author: str | None = None,
) -> Plan:
    """A config-only step: ``/bin/sh -c #(nop)  <comment>``; ``shell`` and ``author``
    are the values after ``change`` when it sets them (SHELL, MAINTAINER)."""
    created_by = history.metadata(state.shell if shell is None else shell, comment)
    return Plan(created_by, {"author": state.doc.get("author") if author is None else author}, change)


def env(state: StepState, ins: Instruction) -> Plan:
    pairs = _pairs(state, ins)

    def change(doc: dict[str, Any]) -> None:
        for k, v in pairs:
            set_env(config_of(doc), k, v)

    return metadata_plan(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), change)


def label(state: StepState, ins: Instruction) -> Plan:
    pairs = _pairs(state, ins)

    def change(doc: dict[str, Any]) -> None:
        cfg = config_of(doc)
        labels = dict(cfg.get("Labels") or {})
        labels.update(pairs)
        cfg["Labels"] = labels

    return metadata_plan(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), change)


def _pairs(state: StepState, ins: Instruction) -> list[tuple[str, str]]:
    """ENV/LABEL ``k=v …`` (or the legacy ``k v``), expanded with the values from before."""
    words = split_words(ins.args, state.escape)
    if words and "=" not in words[0]:
        parts = ins.args.split(None, 1)
        if len(parts) < 2:
            raise DockerfileError(f"{ins.keyword} must have two arguments", ins.line)
        return [(state.expand(parts[0], ins), state.expand(parts[1], ins))]
    out = []
    for w in words:
        if "=" not in w:
            raise DockerfileError(
                f"Syntax error - can't find = in {w!r}. Must be of the form: name=value", ins.line
            )
        k, _, v = w.partition("=")
        k = state.expand(k, ins)
        if not k:
            raise DockerfileError(f"{ins.keyword} names can not be blank", ins.line)
        out.append((k, state.expand(v, ins)))
    return out


def maintainer(state: StepState, ins: Instruction) -> Plan:
    def change(doc: dict[str, Any]) -> None:
        doc["author"] = ins.args

    return metadata_plan(state, f"MAINTAINER {ins.args}", change, author=ins.args)


def expose(state: StepState, ins: Instruction) -> Plan:
    raw = sorted(ins.args.split())
    ports: list[str] = []
    for word in raw:
        for p in state.expand_words(word, ins):
            ports.extend(_port_specs(p, ins.line))

    def change(doc: dict[str, Any]) -> None:
        cfg = config_of(doc)
        exposed = dict(cfg.get("ExposedPorts") or {})
        for p in ports:
            exposed[p] = {}
        cfg["ExposedPorts"] = exposed

    return metadata_plan(state, "EXPOSE " + " ".join(state.expand(w, ins) for w in raw), change)


def _port_specs(spec: str, line: int) -> list[str]:
    """nat.ParsePortSpecs for EXPOSE: ``80``, ``80/udp``, ``8000-8002`` (expanded)."""
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise DockerfileError(f"invalid proto: {proto}", line)
    if ":" in port:
        raise DockerfileError(f"invalid containerPort: {port}", line)
    lo, _, hi = port.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        raise DockerfileError(f"invalid containerPort: {port}", line)
    start, end = int(lo), int(hi or lo)
    if end < start or end > 65535:
        raise DockerfileError(f"invalid range specified for container port: {port}", line)
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def volume(state: StepState, ins: Instruction) -> Plan:
    form = ins.json_args()
    raw = form if form is not None else ins.args.split()
    vols = [state.expand(v, ins) for v in raw]
    if any(not v.strip() for v in vols):
        raise DockerfileError("VOLUME specified can not be an empty string", ins.line)

    def change(doc: dict[str, Any]) -> None:
        cfg = config_of(doc)
        volumes = dict(cfg.get("Volumes") or {})
        for v in vols:
            volumes[v] = {}
        cfg["Volumes"] = volumes

    return metadata_plan(state, f"VOLUME {history.go_list(vols)}", change)


def user(state: StepState, ins: Instruction) -> Plan:
    value = state.expand(ins.args, ins)

    def change(doc: dict[str, Any]) -> None:
        config_of(doc)["User"] = value

    return metadata_plan(state, f"USER {value}", change)


def stopsignal(state: StepState, ins: Instruction) -> Plan:
    sig = state.expand(ins.args, ins)
    name = sig.upper().removeprefix("SIG")
    if not (sig.isdigit() or name in _SIGNALS or name.startswith("RTMIN") or name.startswith("RTMAX")):
        raise DockerfileError(f"Invalid signal: {sig}", ins.line)

    def change(doc: dict[str, Any]) -> None:
        config_of(doc)["StopSignal"] = sig

    return metadata_plan(state, f"STOPSIGNAL {sig}", change)
