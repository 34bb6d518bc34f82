"""Networks as dockerd shows them: the inspect document and the list's filters.
(Connecting containers is in engine.endpoints.)"""

from __future__ import annotations

from engine.errors import FilterInvalid
from engine.filters import label_match
from imagefmt import errors
from imagefmt.records import TYPE_CHECKING
from runtime.network.bridge import NetworkStore

if TYPE_CHECKING:
    from typing import Any

BUILTIN = ("bridge", "host", "none")


def inspect_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The inspect document (lease bookkeeping left out)."""
    out = dict(doc)
    out["Containers"] = {
        cid: {k: v for k, v in e.items() if k != "Aliases"}
        for cid, e in (doc.get("Containers") or {}).items()
    }
    return out


def inspect(nstore: NetworkStore, name: str) -> dict[str, Any] | None:
    """``docker network inspect NAME``'s document; None when there is no such network."""
    try:
        return inspect_doc(nstore.get(name))
    except errors.NotFound:
        return None


def list_networks(nstore: NetworkStore, filters: tuple[str, ...]) -> list[dict[str, Any]]:
    """The networks ``docker network ls`` lists, by name (name=, driver=, id=, label=,
    type=builtin|custom). Raises FilterInvalid."""
    docs = nstore.all()
    for f in filters:
        key, _, value = f.partition("=")
        if key == "name":
            docs = [d for d in docs if value in d["Name"]]
        elif key == "driver":
            docs = [d for d in docs if d["Driver"] == value]
        elif key == "id":
            docs = [d for d in docs if d["Id"].startswith(value)]
        elif key == "label":
            docs = [d for d in docs if label_match(d.get("Labels") or {}, value)]
        elif key == "type":
            docs = [d for d in docs if (d["Name"] in BUILTIN) == (value == "builtin")]
        else:
            raise FilterInvalid(f"invalid filter '{key}'")
    docs.sort(key=lambda d: d["Name"])
    return docs
