"""Docker's object model as dockerd computes it and the CLI prints it: images,
containers, volumes, networks and the system (disk usage, prune, info, version).

The command line (commands/) and the Engine API service compute the same objects
here.  Functions take stores and typed options and return plain data (dicts, lists,
records); they raise imagefmt.errors classes (or the leaf classes of engine.errors)
and print nothing.  Records are imagefmt.records NamedTuples, not dataclasses: ps,
logs and the other container verbs import these modules on their start-up path,
which dataclasses (with inspect and typing) would lengthen by several milliseconds.
"""

VERSION = "0.1.0"
API_VERSION = "1.41"
