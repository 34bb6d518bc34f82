"""What tests/ and bench/ share and dockyard does not ship: live peers (our registry,
distribution 2.8.2, dockerd) started on 127.0.0.1, and small images made in memory."""
