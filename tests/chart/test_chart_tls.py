"""The chart's TLS (values tls.*, docs/design.md section 9): the certificate from the chart
(valid for every server Service name, verifiable with its ca.crt), from cert-manager where its
API is served, or from an existing Secret; the servers get the key pair, the clients and
`helm test` the CA, and nothing changes with TLS off."""

from __future__ import annotations

import base64
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
from chartlib import CERT_MANAGER_API, Obj, find, hook, pod_templates, render, rendered

TLS_DIR = "/run/secrets/points-tls"


def _env(container: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _containers(objs: list[Obj]) -> list[tuple[Obj, Obj]]:
    """(pod spec, container) of every workload and test pod."""
    out: list[tuple[Obj, Obj]] = []
    for pt in pod_templates(objs):
        out.extend((pt.spec, c) for c in pt.spec["containers"])
    return out


def test_off_by_default_nothing_about_tls() -> None:
    objs = rendered("defaults")
    for _, c in _containers(objs):
        assert not any(k.startswith("TLS_") for k in _env(c)), c["name"]
    assert not [o for o in objs if o.get("metadata", {}).get("name", "").endswith("-tls")]


def test_chart_made_certificate_covers_every_server_name() -> None:
    objs = rendered("tls")
    secret = next(o for o in find(objs, "Secret") if o["type"] == "kubernetes.io/tls")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    servers = [o["metadata"]["name"] for o in find(objs, "Service")
               if any(p["name"] == "points" for p in o["spec"]["ports"])]
    assert len(servers) >= 6
    with tempfile.TemporaryDirectory() as tmp:
        ca = Path(tmp, "ca.crt")
        ca.write_bytes(data["ca.crt"])
        crt = Path(tmp, "tls.crt")
        crt.write_bytes(data["tls.crt"])
        ns = secret["metadata"]["namespace"]
        for name in servers:
            for host in (name, f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
                res = subprocess.run(["openssl", "verify", "-CAfile", str(ca), "-verify_hostname",
                                      host, str(crt)], capture_output=True, text=True,
                                     check=False)
                assert res.returncode == 0, (host, res.stdout, res.stderr)
        # And the key is the certificate's.
        key = Path(tmp, "tls.key")
        key.write_bytes(data["tls.key"])
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(crt, key)
        # ECDSA P-256, CA and server alike: a cheap handshake for the server (not RSA-2048).
        for pem in (ca, crt):
            text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(pem)],
                                  capture_output=True, text=True, check=True).stdout
            assert "id-ecPublicKey" in text and "prime256v1" in text, text[:2000]
            assert "ecdsa-with-SHA256" in text, text[:2000]


@pytest.mark.parametrize("value_set", ["tls", "tls-cert-manager"])
def test_servers_get_the_key_pair_clients_and_tests_the_ca(value_set: str) -> None:
    objs = rendered(value_set)
    seen = {"server": 0, "client": 0, "test": 0}
    for spec, c in _containers(objs):
        env = _env(c)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        if c["name"] == "server":
            seen["server"] += 1
            assert env["TLS_CERT_FILE"] == f"{TLS_DIR}/tls.crt"
            assert env["TLS_KEY_FILE"] == f"{TLS_DIR}/tls.key"
            assert mounts["tls"]["mountPath"] == TLS_DIR and "subPath" not in mounts["tls"]
            assert {i["key"] for i in volumes["tls"]["secret"]["items"]} == {"tls.crt", "tls.key"}
        elif c["name"].endswith("-client"):
            seen["test" if c["name"] in ("c-client", "python-client") and "args" in c
                 else "client"] += 1
            assert env["TLS_CA_FILE"] == f"{TLS_DIR}/ca.crt"
            assert mounts["tls-ca"]["mountPath"] == TLS_DIR
            assert [i["key"] for i in volumes["tls-ca"]["secret"]["items"]] == ["ca.crt"]
            # The CA only: a client never holds the servers' key.
            assert "tls" not in volumes
    assert seen["server"] >= 6 and seen["client"] >= 6 and seen["test"] == 2, seen


def test_cert_manager_when_the_values_say_so() -> None:
    # The value decides, not the cluster: cert-manager's API served alone changes nothing.
    chart_made = render("--set", "tls.enabled=true", "--api-versions", CERT_MANAGER_API)
    assert not find(chart_made, "Certificate")
    assert [s for s in find(chart_made, "Secret") if s.get("type") == "kubernetes.io/tls"]
    objs = rendered("tls-cert-manager")
    certs = {o["metadata"]["name"]: o for o in find(objs, "Certificate")}
    issuers = {o["metadata"]["name"] for o in find(objs, "Issuer")}
    assert len(certs) == 2 and len(issuers) == 2
    server = next(c for c in certs.values() if not c["spec"].get("isCA"))
    ca = next(c for c in certs.values() if c["spec"].get("isCA"))
    assert server["spec"]["issuerRef"]["name"] in issuers
    assert ca["spec"]["issuerRef"]["name"] in issuers
    assert "c-server-azmeer" in server["spec"]["dnsNames"]
    assert not [s for s in find(objs, "Secret") if s.get("type") == "kubernetes.io/tls"]
    # An issuer of the user's: only the server Certificate, signed by it.
    objs = render("--set", "tls.enabled=true", "--set", "tls.source=cert-manager",
                  "--api-versions", CERT_MANAGER_API,
                  "--set", "tls.certManager.issuerRef.name=corp-ca",
                  "--set", "tls.certManager.issuerRef.kind=ClusterIssuer")
    assert not find(objs, "Issuer")
    (only,) = find(objs, "Certificate")
    assert only["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer",
                                         "group": "cert-manager.io"}


def test_existing_secret_is_used_and_required() -> None:
    objs = render("--set", "tls.enabled=true", "--set", "tls.source=existingSecret",
                  "--set", "tls.existingSecret=my-tls")
    assert not find(objs, "Certificate")
    assert not [s for s in find(objs, "Secret") if s.get("type") == "kubernetes.io/tls"]
    names = {v["secret"]["secretName"] for pt in pod_templates(objs)
             for v in pt.spec.get("volumes", []) if v["name"] in ("tls", "tls-ca")}
    assert names == {"my-tls"}
    with pytest.raises(AssertionError, match="existingSecret"):
        render("--set", "tls.enabled=true", "--set", "tls.source=existingSecret")


def test_chart_made_secret_is_no_hook() -> None:
    """It must outlive upgrades, read back by lookup: an ordinary object of the release."""
    objs = rendered("tls")
    secret = next(o for o in find(objs, "Secret") if o["type"] == "kubernetes.io/tls")
    assert hook(secret) == ""
