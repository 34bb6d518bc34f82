"""docker/go-units: sizes with suffixes, and the human sizes ``ps``/``stats`` print."""

from __future__ import annotations

import re

from runtime.errors import BadSpec

_RAM = r"(?i)(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?"
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str, flag: str = "--memory") -> int:
    """``10m`` -> 10485760 (binary multiples, as docker's RAMInBytes). Raises BadSpec."""
    m = re.fullmatch(_RAM, text.strip())
    if not m:
        suffix = re.sub(r"^[\d.]+", "", text.strip())
        why = f"invalid suffix: '{suffix}'" if suffix and text[:1].isdigit() else f"invalid size: '{text}'"
        raise BadSpec(f'invalid argument "{text}" for "{flag}" flag: {why}')
    return int(float(m.group(1)) * _SCALE[m.group(2).lower()])


def nano_cpus(text: str) -> int:
    """``--cpus 1.5`` -> 1500000000. Raises BadSpec."""
    try:
        value = float(text)
    except ValueError:
        raise BadSpec(
            f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a rational number'
        ) from None
    return int(value * 1e9)


def human_size(size: float, binary: bool = False) -> str:
    """go-units HumanSize (decimal, "1.5MB") or BytesSize (binary, "1.5MiB"), 4 significant digits."""
    base = 1024.0 if binary else 1000.0
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] if binary else ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.4g}{units[i]}"
