"""The registry client: ``registry_client.RegistryClient`` (pull, push, login, tags,
catalog) over a per-host transport (TLS, auth, retries), the distribution API calls
on one remote repository, credentials and credential helpers, and progress events.
It shares only ``registry/protocol.py`` with the server, never imports it."""
