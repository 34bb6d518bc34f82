"""The core primitive: one process in fresh namespaces on an overlay root (launch.spawn).

Its root filesystem (rootfs), its user (users); no container records here."""
