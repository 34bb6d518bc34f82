"""Containers: namespaces, overlayfs, cgroups, volumes, networks, logs, and the per-container monitor.

Sub-packages, each importing only those listed before it: ``kernel`` (syscalls,
rtnetlink, cgroups), ``process`` (``launch.spawn``: a process in fresh namespaces
on an overlay root), ``network`` (bridges and leases, ports, DNS, /etc files),
``logs`` (the log-driver seam and its drivers), ``container`` (records, create,
the record -> launch spec, lifecycle, the monitor, exec, health, transfer).  At the
top: ``spec``, ``sandbox`` and ``errors``, the builder's only way in, and the
helpers everything uses (``fs``, ``units``, ``trace``, ``volumes``).  This package
may import only ``imagefmt``.
"""
