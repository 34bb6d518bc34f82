"""The OCI distribution protocol on both ends: ``server/`` (the ``/v2/`` registry)
and ``client/`` (push, pull, login), around ``protocol.py``, the wire details both
import; neither side imports the other."""
