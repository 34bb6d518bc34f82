"""``gen-certs``: a private CA, a server certificate and a client certificate.

Made with ``cryptography`` (EC P-256, SHA-256), laid out so that each folder is
usable as is::

    DIR/ca/ca.crt, ca.key               the CA; keep ca.key private
    DIR/server/server.crt, server.key   for --tls-cert/--tls-key (SANs: every --host)
    DIR/client/ca.crt, client.cert, client.key
                                        a docker certs.d/<host:port>/ folder and a skopeo --cert-dir

The client folder has no other ``.key`` file because docker and skopeo require
a ``.cert`` beside each one.  Pass DIR/ca/ca.crt as ``--tls-client-ca`` to make
the server require client certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_dir: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def _builder(subject: str, issuer: x509.Name, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def gen_certs(
    out: Path, hosts: list[str], days: int = 825, client_name: str = "dockyard-client"
) -> CertPaths:
    """Write a CA, a server certificate for ``hosts`` (IPs and DNS names) and a
    client certificate under ``out`` (the tree in the module docstring).

    Overwrites files of an earlier run; ``localhost`` and ``127.0.0.1`` are always
    in the server's SANs."""
    names = list(dict.fromkeys([*hosts, "localhost", "127.0.0.1"]))
    for sub in ("ca", "server", "client"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard registry CA")])
    ca_cert = (
        _builder("dockyard registry CA", ca_name, days * 4)
        .public_key(ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = CertPaths(
        out / "ca/ca.crt",
        out / "ca/ca.key",
        out / "server/server.crt",
        out / "server/server.key",
        out / "client",
    )
    _write_key(paths.ca_key, ca_key)
    _write_cert(paths.ca_cert, ca_cert)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    server_key = _key()
    server_cert = (
        _builder(names[0], ca_cert.subject, days)
        .public_key(server_key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths.server_key, server_key)
    _write_cert(paths.server_cert, server_cert)

    client_key = _key()
    client_cert = (
        _builder(client_name, ca_cert.subject, days)
        .public_key(client_key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(out / "client/client.key", client_key)
    _write_cert(out / "client/client.cert", client_cert)
    shutil.copyfile(paths.ca_cert, out / "client/ca.crt")
    return paths
