"""A local certificate authority and the certificates TLS needs (issue 11), made on this machine:
nothing secret is committed.

    python -m pointsmesh.certs --out out/tls              # the roster's service names
    python -m pointsmesh.certs --out DIR --name my-host   # other names (repeat --name)

writes, in DIR:

    ca.crt  ca.key            the CA (keep ca.key private; only ca.crt is distributed)
    server.crt  server.key    one server certificate for every name given (DNS names, and IP
                              addresses for names that are addresses), plus localhost and
                              127.0.0.1 so local tools can verify it too
    client.crt  client.key    a client certificate (CN "points-client") for mutual TLS

Keys are ECDSA P-256, certificates X.509 v3 with the usual extensions (basic constraints, key
usage, extended key usage server/client auth, subject alternative names); the server
certificate is valid for 825 days, the CA for ten years. Private keys are written with mode
0600. The tests use the same functions for their own CAs, expired and wrong-name certificates.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .spec import load_roster

SERVER_DAYS = 825  # the longest lifetime browsers accept; the tools follow the same habit
CA_DAYS = 3650
CLIENT_CN = "points-client"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Issued:
    """A key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """stem.crt (0644) and stem.key (0600) in directory; returns (cert, key)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.key_pem())
        os.chmod(key_path, 0o600)  # also when the file existed with wider modes
        return cert_path, key_path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):  # unique, in order
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_ca(common_name: str = "points-mesh local CA", days: int = CA_DAYS) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(ca: Issued, common_name: str, names: Iterable[str] = (), *, server: bool = True,
          client: bool = False, days: int = SERVER_DAYS,
          not_before: datetime.datetime | None = None,
          not_after: datetime.datetime | None = None) -> Issued:
    """A leaf certificate signed by ca: for a server (names become its subject alternative
    names), a client, or both. not_before/not_after override the validity (the tests make
    expired certificates with them)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    names = list(names)
    if names:
        builder = builder.add_extension(_san(names), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def roster_names() -> list[str]:
    """Every server's service name in the roster (Compose and Kubernetes Service names)."""
    return [name for m in load_roster() for name in (m.c_server, m.python_server)]


def make_set(out: Path, names: Iterable[str]) -> dict[str, Path]:
    """CA, server and client certificates in out; returns their paths by file name."""
    ca = make_ca()
    server_names = [*names, *LOCAL_NAMES]
    paths: dict[str, Path] = {}
    for stem, issued in (
        ("ca", ca),
        ("server", issue(ca, server_names[0], server_names, server=True)),
        ("client", issue(ca, CLIENT_CN, server=False, client=True)),
    ):
        cert_path, key_path = issued.write(out, stem)
        paths[cert_path.name], paths[key_path.name] = cert_path, key_path
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pointsmesh.certs",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, required=True, help="directory to write into")
    ap.add_argument("--name", action="append", default=[],
                    help="a DNS name or address of the servers (default: the roster's "
                         "service names); repeat for several")
    args = ap.parse_args(argv)
    names = args.name or roster_names()
    paths = make_set(args.out, names)
    print(f"certificates for {', '.join([*names, *LOCAL_NAMES])} in {args.out}:")
    for name in sorted(paths):
        print(f"  {paths[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
