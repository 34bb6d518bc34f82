"""The daemon's certificates under docker's names, made by the registry's gen-certs.

DIR/ca.pem, ca-key.pem                the CA (--tlscacert); keep ca-key.pem private
DIR/server-cert.pem, server-key.pem   the service's (--tlscert, --tlskey)
DIR/client/ca.pem, cert.pem, key.pem  a DOCKER_CERT_PATH for ``docker --tlsverify``
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from registry.server.certs import gen_certs


def gen_daemon_certs(out: Path, hosts: list[str], days: int = 825) -> Path:
    """Write the tree above under ``out`` (overwriting an earlier run's); the client folder."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".gen-") as tmp:
        made = gen_certs(Path(tmp), hosts, days=days, client_name="dockyard-client")
        client = out / "client"
        client.mkdir(exist_ok=True)
        for src, dst in (
            (made.ca_cert, out / "ca.pem"),
            (made.ca_key, out / "ca-key.pem"),
            (made.server_cert, out / "server-cert.pem"),
            (made.server_key, out / "server-key.pem"),
            (made.ca_cert, client / "ca.pem"),
            (made.client_dir / "client.cert", client / "cert.pem"),
            (made.client_dir / "client.key", client / "key.pem"),
        ):
            shutil.copy2(src, dst)
    return out / "client"
