"""What docker's list filters share."""

from __future__ import annotations


def label_match(labels: dict[str, str], spec: str) -> bool:
    """``label=KEY`` (the key is set) or ``label=KEY=VALUE`` (set to that value)."""
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)
