"""tls.enabled=true on the cluster (docs/design.md section 9): the chart makes the certificate
(no cert-manager here), both servers of a member speak TLS only, the client Jobs and `helm test`
verify it and get their rows; an upgrade keeps the certificate; a rotated Secret (a new CA and
certificate, as cert-manager would write them) is picked up by the running servers without a
restart, and the next clients verify against the new CA; a member added makes the chart-made
certificate again, with the new names."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from e2elib import MEASURE, RELEASE, Space, reply_for, unique

from pointsmesh import certs, k8s

MEMBER = {"name": "hasif", "cPort": 5005, "pythonPort": 5006}
NEW_MEMBER = {"name": "akmal", "cPort": 5003, "pythonPort": 5004}
SERVERS = ("c-server-hasif", "python-server-hasif")
SECRET = f"{RELEASE}-tls"


def _server_pods(sp: Space) -> dict[str, str]:
    pods: dict[str, str] = {}
    for name in SERVERS:
        items = sp.pods(f"points-mesh.io/server={name}")
        running = [p for p in items if p["status"].get("phase") == "Running"]
        assert running, f"no running pod for {name}"
        pods[name] = running[0]["metadata"]["name"]
    return pods


def _tls_counts(sp: Space, pod: str) -> dict[str, float]:
    m = sp.metrics(pod)
    return {k: v for k, v in m.items() if k.startswith("points_tls_")}


def test_tls_release(kube: k8s.Kube, values: dict[str, Any], tmp_path: Any) -> None:
    sp = Space(kube, unique("e2e-tls"))
    kube.kubectl("create", "namespace", sp.ns)
    try:
        vals = k8s.merge_values(values, {"members": [MEMBER], "tls": {"enabled": True}})
        vfile = k8s.write_values(vals, tmp_path / "values.yaml")
        t0 = time.monotonic()
        sp.helm("install", RELEASE, str(k8s.CHART), "-f", str(vfile), "--wait",
                "--timeout", "10m")
        MEASURE["tls: helm install -> client Job complete (s)"] = time.monotonic() - t0
        assert reply_for("c_user-hasif").search(sp.kubectl("logs", "job/client-hasif"))
        assert reply_for("python_user-hasif").search(
            sp.kubectl("logs", "job/client-hasif", "-c", "python-client"))
        out = sp.helm("test", RELEASE, "--logs", "--timeout", "5m")
        assert out.count("ok   ") == 4 and "FAIL" not in out, out
        pods = _server_pods(sp)
        for name, pod in pods.items():
            counts = _tls_counts(sp, pod)
            # The client Jobs and the two helm test pods: at least 3 handshakes each, all good.
            assert counts['points_tls_handshakes_total{result="ok"}'] >= 3, (name, counts)
            bad = {k: v for k, v in counts.items() if "handshakes" in k and "ok" not in k}
            assert not any(bad.values()), (name, bad)

        # An upgrade keeps the chart-made certificate (read back from the live Secret).
        before = sp.get(f"secret/{SECRET}")["data"]
        sp.helm("upgrade", RELEASE, str(k8s.CHART), "-f", str(vfile), "--wait",
                "--timeout", "10m")
        after = sp.get(f"secret/{SECRET}")["data"]
        assert after == before, "the upgrade replaced the certificate"

        # Rotation in place: a new CA and certificate in the same Secret.
        pods = _server_pods(sp)
        ca = certs.make_ca("rotated CA")
        names = [n for s in SERVERS for n in (s, f"{s}.{sp.ns}", f"{s}.{sp.ns}.svc",
                                              f"{s}.{sp.ns}.svc.cluster.local")]
        leaf = certs.issue(ca, SERVERS[0], names)
        data = {"tls.crt": leaf.cert_pem(), "tls.key": leaf.key_pem(), "ca.crt": ca.cert_pem()}
        patch = {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        t0 = time.monotonic()
        sp.kubectl("patch", "secret", SECRET, "--type", "merge", "-p", json.dumps(patch))
        deadline = time.monotonic() + 180
        pending = dict(pods)
        while pending:
            assert time.monotonic() < deadline, f"not reloaded: {pending}"
            for name, pod in list(pending.items()):
                if _tls_counts(sp, pod).get('points_tls_reloads_total{result="ok"}', 0) >= 1:
                    del pending[name]
            time.sleep(2)
        MEASURE["tls: Secret patched -> both servers reloaded (s)"] = time.monotonic() - t0
        assert _server_pods(sp) == pods, "a server restarted instead of reloading"
        # The next clients mount the new ca.crt and verify the new certificate.
        out = sp.helm("test", RELEASE, "--logs", "--timeout", "5m")
        assert out.count("ok   ") == 4 and "FAIL" not in out, out

        # A member added: the chart-made certificate is made again with the new names (the
        # rotated one above lacks them), and the new member's clients verify it.
        vals = k8s.merge_values(vals, {"members": [MEMBER, NEW_MEMBER]})
        vfile = k8s.write_values(vals, tmp_path / "values-2.yaml")
        # The patch above made kubectl the owner of the Secret's data: Helm 4 applies on the
        # server and would report the conflict, so the upgrade that replaces the certificate
        # takes the fields back (--force-conflicts), as the chart README says.
        sp.helm("upgrade", RELEASE, str(k8s.CHART), "-f", str(vfile), "--wait",
                "--timeout", "10m", "--force-conflicts")
        crt = base64.b64decode(sp.get(f"secret/{SECRET}")["data"]["tls.crt"])
        assert crt != data["tls.crt"], "the certificate was not made again for the new names"
        assert reply_for("c_user-akmal").search(sp.kubectl("logs", "job/client-akmal"))
        assert reply_for("python_user-akmal").search(
            sp.kubectl("logs", "job/client-akmal", "-c", "python-client"))
    finally:
        sp.helm("uninstall", RELEASE, "--wait", "--timeout", "3m", check=False)
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)
