"""Dockerfile-style changes to an image config (``import -c``, ``commit -c``).

``apply_change(doc, "CMD [\"sh\"]")`` edits a config document in place as
Docker does for the instructions it accepts there: CMD, ENTRYPOINT, ENV,
EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Any

from imagefmt.errors import Invalid

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)
DEFAULT_SHELL = ["/bin/sh", "-c"]


def command_form(rest: str, shell: list[str] | None = None) -> list[str]:
    """JSON (exec) form when ``rest`` is a JSON string array, else the shell form."""
    text = rest.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return [*(DEFAULT_SHELL if shell is None else shell), text]


def parse_pairs(rest: str, what: str) -> list[tuple[str, str]]:
    """``k=v k2="v 2"`` or the legacy single ``k v`` form (ENV, LABEL)."""
    text = rest.strip()
    if not text:
        raise Invalid(f"{what} requires at least one argument")
    first = text.split(None, 1)[0]
    if "=" not in first:
        parts = text.split(None, 1)
        return [(parts[0], parts[1] if len(parts) > 1 else "")]
    try:
        words = shlex.split(text, posix=True)
    except ValueError as err:
        raise Invalid(f"{what}: {err}") from err
    out = []
    for w in words:
        if "=" not in w:
            raise Invalid(f"{what} names must be followed by '=': {w!r}")
        k, _, v = w.partition("=")
        if not k:
            raise Invalid(f"{what}: empty name in {w!r}")
        out.append((k, v))
    return out


def set_env(cfg: dict[str, Any], key: str, value: str) -> None:
    """Set ``key`` in the config's Env, in place when it is there (Docker keeps the order)."""
    env = list(cfg.get("Env") or [])
    for i, item in enumerate(env):
        if item.split("=", 1)[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    cfg["Env"] = env


def parse_port(spec: str) -> str:
    """``80`` → ``80/tcp``; ``53/udp`` kept; ranges not expanded."""
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if not re.fullmatch(r"\d+(-\d+)?", port) or proto not in ("tcp", "udp", "sctp"):
        raise Invalid(f"invalid port {spec!r}: use PORT[/tcp|udp|sctp]")
    return f"{port}/{proto}"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration(text: str) -> int:
    """Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    pos, total = 0, 0.0
    if text == "0":
        return 0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if not m:
            raise Invalid(f"invalid duration {text!r}: use e.g. 30s, 1m30s, 500ms")
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if not text:
        raise Invalid("empty duration")
    return int(total)


def parse_healthcheck(rest: str) -> dict[str, Any] | None:
    """``[--interval=… --timeout=… --start-period=… --start-interval=… --retries=…] CMD …`` or ``NONE``."""
    text = rest.strip()
    opts: dict[str, Any] = {}
    names = {
        "interval": "Interval",
        "timeout": "Timeout",
        "start-period": "StartPeriod",
        "start-interval": "StartInterval",
    }
    while text.startswith("--"):
        flag, _, text = text.partition(" ")
        text = text.strip()
        key, _, value = flag[2:].partition("=")
        if key in names:
            opts[names[key]] = parse_duration(value)
        elif key == "retries":
            if not value.isdigit():
                raise Invalid(f"HEALTHCHECK --retries must be a number, not {value!r}")
            opts["Retries"] = int(value)
        else:
            raise Invalid(f"unknown HEALTHCHECK flag --{key}")
    kind, _, cmd = text.partition(" ")
    if kind.upper() == "NONE":
        return {"Test": ["NONE"]}
    if kind.upper() != "CMD" or not cmd.strip():
        raise Invalid("HEALTHCHECK needs CMD <command> or NONE")
    cmd = cmd.strip()
    form = command_form(cmd, shell=[])
    test = ["CMD", *form] if form != [cmd] else ["CMD-SHELL", cmd]
    return {"Test": test, **opts}


def apply_change(doc: dict[str, Any], line: str, allowed: tuple[str, ...] = ALLOWED) -> None:
    """Apply one instruction line to the config document ``doc`` (in place)."""
    keyword, _, rest = line.strip().partition(" ")
    keyword = keyword.upper()
    if keyword not in allowed:
        raise Invalid(f"{keyword} is not a valid change command: use one of {', '.join(allowed)}")
    cfg: dict[str, Any] = doc.setdefault("config", {})
    rest = rest.strip()
    if keyword == "CMD":
        cfg["Cmd"] = command_form(rest)
    elif keyword == "ENTRYPOINT":
        cfg["Entrypoint"] = command_form(rest)
    elif keyword == "ENV":
        for k, v in parse_pairs(rest, "ENV"):
            set_env(cfg, k, v)
    elif keyword == "LABEL":
        labels = cfg.get("Labels") or {}
        labels.update(parse_pairs(rest, "LABEL"))
        cfg["Labels"] = labels
    elif keyword == "EXPOSE":
        ports = cfg.get("ExposedPorts") or {}
        for p in rest.split():
            ports[parse_port(p)] = {}
        cfg["ExposedPorts"] = ports
    elif keyword == "VOLUME":
        vols = cfg.get("Volumes") or {}
        form = command_form(rest, shell=[])  # a JSON list, or [rest] for the plain form
        for v in form if form != [rest] else rest.split():
            vols[v] = {}
        cfg["Volumes"] = vols
    elif keyword == "USER":
        cfg["User"] = rest
    elif keyword == "WORKDIR":
        cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", rest))
    elif keyword == "STOPSIGNAL":
        cfg["StopSignal"] = rest
    elif keyword == "ONBUILD":
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest]
    elif keyword == "HEALTHCHECK":
        cfg["Healthcheck"] = parse_healthcheck(rest)
