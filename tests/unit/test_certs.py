"""pointsmesh.certs: the local CA and the certificates it issues verify with OpenSSL's own
command line tool, for the names asked and no others, and keep their keys private."""

from __future__ import annotations

import datetime
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pointsmesh import certs

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


def _verify(ca: Path, cert: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, "verify", "-CAfile", str(ca), *extra, str(cert)],
                          capture_output=True, text=True, check=False)


def test_set_verifies_for_its_names_only(tmp_path: Path) -> None:
    paths = certs.make_set(tmp_path, ["c-server-x", "10.1.2.3"])
    ca, server, client = paths["ca.crt"], paths["server.crt"], paths["client.crt"]
    assert _verify(ca, server, "-purpose", "sslserver").returncode == 0
    assert _verify(ca, client, "-purpose", "sslclient").returncode == 0
    for name in ("c-server-x", "localhost"):
        assert _verify(ca, server, "-verify_hostname", name).returncode == 0
    assert _verify(ca, server, "-verify_ip", "10.1.2.3").returncode == 0
    wrong = _verify(ca, server, "-verify_hostname", "python-server-x")
    assert wrong.returncode != 0 and "hostname mismatch" in wrong.stdout + wrong.stderr
    # A client certificate is not a server certificate.
    assert _verify(ca, client, "-purpose", "sslserver").returncode != 0
    for key in ("ca.key", "server.key", "client.key"):
        assert stat.S_IMODE(paths[key].stat().st_mode) == 0o600


def test_other_ca_and_expired_certificates_fail(tmp_path: Path) -> None:
    ca, other = certs.make_ca(), certs.make_ca("another CA")
    ca_path, _ = ca.write(tmp_path, "ca")
    foreign, _ = certs.issue(other, "s", ["s"]).write(tmp_path, "foreign")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    expired, _ = certs.issue(ca, "s", ["s"], not_before=past,
                             not_after=past + datetime.timedelta(days=1)).write(tmp_path, "old")
    out = _verify(ca_path, foreign)
    assert out.returncode != 0 and "unable to get local issuer" in out.stdout + out.stderr
    out = _verify(ca_path, expired)
    assert out.returncode != 0 and "expired" in out.stdout + out.stderr


def test_roster_names_are_the_servers_service_names() -> None:
    names = certs.roster_names()
    assert names and all(n.startswith(("c-server-", "python-server-")) for n in names)
    assert len(names) == len(set(names))
