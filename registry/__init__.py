"""The registry: the OCI distribution API server (``create_app``), its storage,
auth, TLS helpers and garbage collector; the wire protocol shared with the client."""
