"""Thin interfaces to the Linux kernel: syscalls through ctypes, rtnetlink, cgroup filesystems.

Nothing here knows containers; everything else in runtime/ builds on it."""
