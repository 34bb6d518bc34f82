"""The registry server: the Flask ``/v2/`` app (``app.create_app``) and its routes,
auth, config, gunicorn runner, storage (a driver seam, the repository layout, upload
sessions and GC over it), webhooks, manifest rules, and the admin verbs' gen-certs and
htpasswd.  It shares only ``registry/protocol.py`` with the client, never imports it."""
