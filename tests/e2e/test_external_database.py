"""database.enabled=false: the servers use a database the operator runs (here: one this test
runs in a namespace of its own, loaded with sql/01-schema.sql and the app account only, no seed
rows); the servers create their own rows, the client Jobs and `helm test` pass."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from e2elib import MEASURE, RELEASE, Space, reply_for, unique

from pointsmesh import ROOT, k8s

MEMBER = {"name": "akmal", "cPort": 5003, "pythonPort": 5004}


def _database(image: str, root_pw: str, app_pw: str) -> list[dict[str, Any]]:
    labels = {"app": "ext-db"}
    sql = ROOT / "sql"
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ext-db-init"},
         "data": {name: (sql / name).read_text()
                  for name in ("01-schema.sql", "03-app-user.sh", "app-user.sql.in")}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ext-db"},
         "stringData": {"root": root_pw, "app": app_pw}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext-db"},
         "spec": {"selector": labels, "ports": [{"port": 3306, "targetPort": 3306}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ext-db"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                     "fsGroup": 999},
                 "containers": [{
                     "name": "database", "image": image, "imagePullPolicy": "IfNotPresent",
                     "env": [
                         {"name": "MYSQL_ROOT_PASSWORD", "valueFrom": {
                             "secretKeyRef": {"name": "ext-db", "key": "root"}}},
                         {"name": "APP_DB_PASSWORD", "valueFrom": {
                             "secretKeyRef": {"name": "ext-db", "key": "app"}}},
                     ],
                     "ports": [{"containerPort": 3306}],
                     "readinessProbe": {"tcpSocket": {"port": 3306}, "periodSeconds": 2},
                     "volumeMounts": [
                         {"name": "init", "mountPath": "/docker-entrypoint-initdb.d"},
                         {"name": "data", "mountPath": "/var/lib/mysql"},
                     ],
                 }],
                 "volumes": [{"name": "init", "configMap": {"name": "ext-db-init"}},
                             {"name": "data", "emptyDir": {}}],
             }}}},
    ]


@pytest.fixture
def external_db(kube: k8s.Kube, images: k8s.Images) -> Any:
    sp = Space(kube, unique("e2e-extdb"))
    kube.kubectl("create", "namespace", sp.ns)
    app_pw = secrets.token_urlsafe(18)
    # The second flavour here (the chart's own database runs the first, MySQL, elsewhere).
    image = images.db_images.get("mariadb") or images.db_image or "mysql:8.4"
    sp.apply(_database(image, secrets.token_urlsafe(18), app_pw))
    try:
        yield sp, app_pw
    finally:
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)


def test_external_database(kube: k8s.Kube, values: dict[str, Any], external_db: Any,
                           tmp_path: Any) -> None:
    db, app_pw = external_db
    db.wait_ready("deployment/ext-db", timeout=300)
    sp = Space(kube, unique("e2e-ext"))
    kube.kubectl("create", "namespace", sp.ns)
    try:
        vals = k8s.merge_values(values, {
            "members": [MEMBER],
            "database": {"enabled": False},
            "externalDatabase": {"host": f"ext-db.{db.ns}.svc.cluster.local",
                                 "password": app_pw},
        })
        vfile = k8s.write_values(vals, tmp_path / "values.yaml")
        t0 = time.monotonic()
        sp.helm("install", RELEASE, str(k8s.CHART), "-f", str(vfile), "--wait",
                "--timeout", "10m")
        MEASURE["external database: helm install -> client Job complete (s)"] = (
            time.monotonic() - t0)
        assert not sp.get("statefulsets")["items"], "the chart's database was deployed"
        assert reply_for("c_user-akmal").search(sp.kubectl("logs", "job/client-akmal"))
        assert reply_for("python_user-akmal").search(
            sp.kubectl("logs", "job/client-akmal", "-c", "python-client"))
        # The servers made their rows in the external database (it had no seed rows).
        pod = db.pods("app=ext-db")[0]["metadata"]["name"]
        rows = db.kubectl(
            "exec", pod, "--", "sh", "-c",
            'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" "$(command -v mysql || command -v mariadb)" '
            '-uroot -N -B -e "SELECT user FROM project_db.users ORDER BY user"')
        assert rows.split() == ["c_user-akmal", "python_user-akmal"], rows
        out = sp.helm("test", RELEASE, "--logs", "--timeout", "5m")
        assert out.count("ok   ") == 4 and "FAIL" not in out, out
    finally:
        sp.helm("uninstall", RELEASE, "--wait", "--timeout", "3m", check=False)
        kube.kubectl("delete", "namespace", sp.ns, "--wait=false", check=False)
