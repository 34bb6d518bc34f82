"""Containers: namespaces, overlayfs, cgroups, volumes, networks, logs, and the per-container monitor.

Layers, each importing only those above it (no sub-package imports one below it):

- ``errors``, ``fs``, ``units``, ``trace``: the leaf errors and helpers;
- ``kernel``: syscalls (ctypes), rtnetlink, cgroups;
- ``spec``: what one launch needs (Spec, Process, Rootfs, Mount);
- ``process`` (``launch.spawn``: a process in fresh namespaces on an overlay root),
  ``network`` (bridges and leases, ports, DNS, /etc files), ``logs`` (the log-driver
  seam and its drivers), ``volumes``;
- ``sandbox`` (``run_step``, the builder's entry) and ``container`` (records, create,
  the record -> launch spec, lifecycle, the monitor, exec, health, transfer, stats).

The builder reaches runtime only through ``sandbox``, ``spec`` and ``errors``.  This package may import
only ``imagefmt``.
"""
