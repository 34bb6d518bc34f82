"""Instruction flags (``--name=value`` before the arguments), parsed into one dataclass per keyword.

The parser refuses a flag its keyword does not take (docker's ``Unknown flag: bogus``, the name as written)
and builds ``CopyFlags`` (COPY and ADD), ``RunFlags``, ``FromFlags`` or
``HealthcheckFlags``.  Values that may hold variables (``--from``,
``--chown``, ``--chmod``, ``--mount``) are kept as written: the step expands
them, with the ARG and ENV values only known while building, and
``parse_run_mount`` reads an expanded ``--mount``.

HEALTHCHECK's flags fail the parse, as docker's classic builder reports
them (``dockerfile parse error line N: Unknown flag: foo``, Go's duration and
integer errors).  A bad value of a BuildKit-only flag (``RUN --network``,
``--security``, ``COPY --parents``), which the classic builder has no words
for, is kept as a *problem* that the step raises with
``Instruction.check_flag`` when it runs.

The flag types are NamedTuples, not dataclasses: a build imports this
module every time, and a frozen dataclass costs about seven times as much
to define (~1 ms each here).

A new flag is a field here, its parsing in the keyword's ``_parse_*``, its
name in ``ALLOWED`` and its effect in ``builder/instructions/<keyword>.py``.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import NamedTuple, TypeVar

from builder.errors import DockerfileError
from imagefmt.changes import parse_duration
from imagefmt.errors import Invalid

ALLOWED = {
    "ADD": {"chown", "chmod", "checksum", "link", "keep-git-dir", "exclude", "unpack"},
    "COPY": {"chown", "chmod", "from", "link", "parents", "exclude"},
    "FROM": {"platform"},
    "RUN": {"mount", "network", "security"},
}
RUN_NETWORKS = ("none", "host")  # and "default": the build's --network
MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")

Pairs = list[tuple[str, str | None]]
Problems = tuple[tuple[str, str], ...]  # (flag, message in docker's words)


class NoFlags(NamedTuple):
    """The flags of a keyword that takes none."""

    problems: Problems = ()


class CopyFlags(NamedTuple):
    """COPY and ADD: each keyword takes its own subset (``ALLOWED``)."""

    problems: Problems = ()
    from_: str | None = None  # COPY --from=stage|index|image (expanded by the step)
    chown: str | None = None  # user[:group] ("" for a bare --chown: no owner)
    chmod: str | None = None  # octal or u+x,go-w
    link: bool = False  # --link, --link=true (any value but "false")
    exclude: tuple[str, ...] = ()  # patterns, as .dockerignore's
    parents: bool = False  # COPY --parents: sources keep their parent directories (copyparents)
    checksum: str | None = None  # ADD --checksum=sha256:… of a URL's content
    keep_git_dir: bool = False  # ADD --keep-git-dir: accepted; dockyard has no git sources
    unpack: bool | None = None  # ADD --unpack: accepted and ignored


class RunFlags(NamedTuple):
    problems: Problems = ()
    mounts: tuple[str, ...] = ()  # --mount values as written (expanded by the step)
    network: str = "default"  # default, none or host
    security: str = "sandbox"


class FromFlags(NamedTuple):
    problems: Problems = ()
    platform: str | None = None  # recorded: dockyard does not emulate another platform


class HealthcheckFlags(NamedTuple):
    """HEALTHCHECK's options in nanoseconds (``retries`` a count); ``written`` is the
    order their config keys were first given in, which the config keeps."""

    problems: Problems = ()
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None
    written: tuple[str, ...] = ()

    def config(self, test: list[str]) -> dict[str, object]:
        """The config's Healthcheck: ``Test``, then the options as written."""
        values = {
            "Interval": self.interval,
            "Timeout": self.timeout,
            "StartPeriod": self.start_period,
            "StartInterval": self.start_interval,
            "Retries": self.retries,
        }
        return {"Test": test, **{key: values[key] for key in self.written}}


Flags = NoFlags | CopyFlags | RunFlags | FromFlags | HealthcheckFlags
F = TypeVar("F", NoFlags, CopyFlags, RunFlags, FromFlags, HealthcheckFlags)
NO_FLAGS = NoFlags()


# ----------------------------------------------------------------------- parsing ---


def split_flags(rest: str) -> tuple[Pairs, str]:
    """Leading ``--name[=value]`` words (names as written, values may be quoted) and the remaining text."""
    flags: Pairs = []
    text = rest.lstrip()
    while text.startswith("--"):
        m = re.match(r"--([A-Za-z][A-Za-z0-9\-]*)(=(\"[^\"]*\"|'[^']*'|\S*))?(\s+|$)", text)
        if not m:
            break
        value = m.group(3)
        if value is not None and len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
            value = value[1:-1]
        flags.append((m.group(1), value))
        text = text[m.end() :]
    return flags, text.strip()


def parse_flags(keyword: str, text: str, line: int) -> tuple[Flags, str]:
    """``keyword``'s flags at the start of ``text`` and the arguments after them.

    Raise DockerfileError for a flag the keyword does not take."""
    if keyword == "HEALTHCHECK":  # docker refuses a bad flag before the build starts
        flags, rest = _parse_healthcheck(text)
        for _, problem in flags.problems:
            raise DockerfileError(f"dockerfile parse error line {line}: {problem}", line)
        return flags, rest
    if keyword not in ALLOWED:
        return NO_FLAGS, text
    written, rest = split_flags(text)
    for name, _ in written:
        if name.lower() not in ALLOWED[keyword]:
            raise DockerfileError(f"dockerfile parse error line {line}: Unknown flag: {name}", line)
    pairs = [(name.lower(), value) for name, value in written]
    if keyword == "RUN":
        for mount in _all(pairs, "mount"):
            if any("$" in ref for ref in mount_from_refs(mount)):  # BuildKit's rule and words
                raise DockerfileError(
                    "'from' doesn't support variable expansion, define alias stage instead", line
                )
        return _parse_run(pairs), rest
    if keyword == "FROM":
        return FromFlags((), _last(pairs, "platform") or None), rest
    return _parse_copy(pairs), rest


def _last(pairs: Pairs, name: str) -> str | None:
    """The last value of ``--name`` (``""`` for a bare ``--name``), None if absent."""
    found = None
    for key, value in pairs:
        if key == name:
            found = "" if value is None else value
    return found


def _all(pairs: Pairs, name: str) -> tuple[str, ...]:
    return tuple("" if v is None else v for k, v in pairs if k == name)


def _parse_copy(pairs: Pairs) -> CopyFlags:
    link = _last(pairs, "link")
    unpack = _last(pairs, "unpack")
    parents_value = _last(pairs, "parents")
    parents = parents_value is not None and parents_value != "false"
    return CopyFlags(
        problems=(),
        from_=_last(pairs, "from"),
        chown=_last(pairs, "chown"),
        chmod=_last(pairs, "chmod"),
        link=link is not None and link != "false",
        exclude=_all(pairs, "exclude"),
        parents=parents,
        checksum=_last(pairs, "checksum"),
        keep_git_dir=_last(pairs, "keep-git-dir") not in (None, "false"),
        unpack=None if unpack is None else unpack != "false",
    )


def network_problem(network: str) -> str:
    return f"RUN --network={network}: use default, none or host"


def _parse_run(pairs: Pairs) -> RunFlags:
    network = _last(pairs, "network") or "default"
    security = _last(pairs, "security")
    problems = []
    if network != "default" and network not in RUN_NETWORKS:
        problems.append(("network", network_problem(network)))
    if security not in (None, "sandbox"):
        problems.append(("security", "RUN --security=insecure is not supported by dockyard"))
    return RunFlags(tuple(problems), _all(pairs, "mount"), network, security or "sandbox")


_HEALTHCHECK_KEYS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
}


def _go_duration_error(value: str) -> str:
    """Go's time.ParseDuration error, as docker prints it for a bad HEALTHCHECK flag."""
    m = re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)([^\d.]+)", value)
    if m and m.group(1) not in ("ns", "us", "µs", "ms", "s", "m", "h"):
        return f"time: unknown unit {json.dumps(m.group(1))} in duration {json.dumps(value)}"
    return f"time: invalid duration {json.dumps(value)}"


def _parse_healthcheck(text: str) -> tuple[HealthcheckFlags, str]:
    """HEALTHCHECK's ``--name=value`` words (each ends at the next space, as docker's
    20.10 flag parser reads them); the first bad one becomes the problem."""
    values: dict[str, int] = {}
    problem = ""
    while text.startswith("--"):
        flag, _, text = text.partition(" ")
        text = text.strip()
        if problem:
            continue
        key, _, value = flag[2:].partition("=")
        if key in _HEALTHCHECK_KEYS:
            try:
                values[_HEALTHCHECK_KEYS[key]] = parse_duration(value)
            except Invalid:
                problem = _go_duration_error(value)
        elif key == "retries":
            if value.isdigit():
                values["Retries"] = int(value)
            else:
                problem = f"strconv.ParseInt: parsing {json.dumps(value)}: invalid syntax"
        else:
            problem = f"Unknown flag: {key}"
    flags = HealthcheckFlags(
        problems=(("healthcheck", problem),) if problem else (),
        interval=values.get("Interval"),
        timeout=values.get("Timeout"),
        start_period=values.get("StartPeriod"),
        start_interval=values.get("StartInterval"),
        retries=values.get("Retries"),
        written=tuple(values),
    )
    return flags, text


# ------------------------------------------------------------------- RUN --mount ---


class MountSpec(NamedTuple):
    """One ``RUN --mount=`` value, expanded and parsed."""

    type: str
    target: str
    source: str = ""
    from_: str = ""
    id: str = ""
    sharing: str = "shared"
    readonly: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: str = ""
    required: bool = False
    env: str = ""


def _bool(value: str) -> bool:
    return value.lower() in ("", "true", "1", "yes")


def parse_run_mount(text: str, line: int = 0) -> MountSpec:
    """Parse ``type=cache,target=/root/.cache,sharing=locked`` (CSV, as BuildKit)."""
    import csv  # here: only a RUN --mount needs it

    fields = next(csv.reader([text]), [])
    values: dict[str, str] = {}
    flags: set[str] = set()
    for f in fields:
        key, eq, value = f.strip().partition("=")
        key = key.lower()
        if eq:
            values[key] = value
        else:
            flags.add(key)
    kind = values.get("type", "bind")
    if kind not in MOUNT_TYPES:
        raise DockerfileError(f"unsupported mount type {kind!r}", line)
    target = values.get("target") or values.get("dst") or values.get("destination") or ""
    ident = values.get("id", "")
    if kind == "ssh":  # BuildKit: the "default" agent, at /run/buildkit/ssh_agent.N unless a target is given
        ident = ident or "default"
    if kind == "secret":
        ident = ident or posixpath.basename(target)
        if not ident:
            raise DockerfileError("secret mount needs an id or a target", line)
        if not target and "env" not in values:
            target = f"/run/secrets/{ident}"
    if not target and kind not in ("secret", "ssh"):
        raise DockerfileError(f"mount type {kind} needs a target", line)
    readonly = kind in ("bind", "secret")
    if "ro" in flags or "readonly" in flags or _bool(values.get("ro", "false")) and "ro" in values:
        readonly = True
    if "rw" in flags or "readwrite" in flags or ("rw" in values and _bool(values["rw"])):
        readonly = False
    sharing = values.get("sharing", "shared")
    if sharing not in ("shared", "private", "locked"):
        raise DockerfileError(f"invalid sharing {sharing!r}: use shared, private or locked", line)

    def num(key: str, base: int = 10) -> int | None:
        if key not in values:
            return None
        try:
            return int(values[key], base)
        except ValueError:
            raise DockerfileError(f"invalid {key} {values[key]!r} in --mount", line) from None

    return MountSpec(
        kind,
        target,
        values.get("source") or values.get("src") or "",
        values.get("from", ""),
        ident,
        sharing,
        readonly,
        num("mode", 8),
        num("uid"),
        num("gid"),
        values.get("size", ""),
        "required" in flags or _bool(values.get("required", "false")) and "required" in values,
        values.get("env", ""),
    )


def mount_from_refs(mount: str) -> list[str]:
    """The ``from=`` values of a ``--mount`` as written (for the stage graph)."""
    refs = []
    for part in mount.split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() == "from" and value:
            refs.append(value)
    return refs
