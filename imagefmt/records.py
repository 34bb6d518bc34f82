"""``NamedTuple`` and ``TYPE_CHECKING`` without importing typing at run time.

typing costs ~3.5 ms to import, and its NamedTuple compiles every field's
annotation (a string, under ``from __future__ import annotations``) into a
ForwardRef: ~180 us a class, against ~55 us for the same class made by
collections.namedtuple.  ``dockyard run`` defines about twenty records, so the
modules on its path take both names from here and import typing's names for
annotations only under ``if TYPE_CHECKING:``.  mypy treats any name
``TYPE_CHECKING`` as true and so checks these records as typing.NamedTuples;
at run time they have the same fields, defaults, methods and ``_replace``.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    from collections import namedtuple

    class _RecordMeta(type):
        def __new__(mcs, typename, bases, ns):
            fields = ns.get("__annotations__", {})
            defaults = [ns[name] for name in fields if name in ns]
            cls = namedtuple(typename, fields, defaults=defaults, module=ns["__module__"])
            for key, value in ns.items():  # methods, classmethods, __doc__, __qualname__
                if key not in fields and key not in ("__module__", "__annotations__"):
                    setattr(cls, key, value)
            return cls

    _Record = type.__new__(_RecordMeta, "NamedTuple", (), {})

    def NamedTuple(typename, fields=None, /):
        raise TypeError("NamedTuple: define records with the class syntax")

    NamedTuple.__mro_entries__ = lambda bases: (_Record,)
