"""Containers with state: the record store, create, the record -> launch spec, lifecycle,
the per-container monitor and its streams, health checks, exec, attach, cp/commit/export,
stats/update and network wiring."""
