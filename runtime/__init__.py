"""Containers: namespaces, overlayfs, cgroups, volumes, networks, and the per-container monitor.

The core primitive is ``launch.spawn(spec, stdio)``: a process in fresh
namespaces on an overlay root (``spec``, ``rootfs``, ``users``, ``linux``).
``sandbox.run_step`` wraps it for the builder.  Containers with state
(``containers``, ``create``, ``lifecycle``, ``monitor``, ``attach``, ``logs``,
``execute``, ``transfer``, ``stats``) add limits (``cgroups``), volumes
(``volumes``) and networking (``network``, ``netlink``, ``wiring``, ``proxy``,
``dns``).  This package may import only ``imagefmt``.
"""
