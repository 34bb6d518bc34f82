"""The Docker Engine API service (``dockyard system service``, ``dockyard daemon``).

It serves API v1.41 over a unix socket and TCP (mutual TLS with --tlsverify) so that
the docker CLI, docker-py and compose drive dockyard unchanged.  It computes nothing
of its own: every route reads the same store as the command line through engine/
and the libraries below it, so the service and the CLI see the same images and
containers at once, and daemonless stays the default.

- ``server``: the HTTP/1.1 server (threads; streaming; connection hijack).
- ``routes``: the route table; ``system``, ``images``, ``containers``, ``execs``,
  ``objects`` (volumes, networks) and ``build`` hold the handlers.
- ``wire``: docker's stream framing (the 8-byte multiplexed header), JSON progress.
- ``certs``: the daemon's CA, server and client certificates under docker's names.

Nothing imports this package but commands/ (tests/test_layering.py).
"""
