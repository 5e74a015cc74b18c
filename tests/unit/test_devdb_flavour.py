"""The dev database's flavour setting (pointsmesh.devdb): MariaDB by default, Oracle MySQL on
request, and a clear message when MySQL is asked for but not installed. No server is started."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pointsmesh import devdb
from pointsmesh.devdb import FLAVOUR_ENV, MYSQL_ROOT_ENV, DevDB, DevDBError, MySQLRoot


def test_default_flavour_is_mariadb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(FLAVOUR_ENV, raising=False)
    assert devdb.default_flavour() == "mariadb"
    assert DevDB(tmp_path).flavour == "mariadb"
    monkeypatch.setenv(FLAVOUR_ENV, "")
    assert DevDB(tmp_path).flavour == "mariadb"


def test_flavour_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(FLAVOUR_ENV, " MySQL ")
    db = DevDB(tmp_path)
    assert db.flavour == "mysql" and db.label == "MySQL"
    assert DevDB(tmp_path, flavour="mariadb").flavour == "mariadb"  # the field wins


def test_unknown_flavour_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(FLAVOUR_ENV, "postgres")
    with pytest.raises(DevDBError, match="mariadb, mysql"):
        DevDB(tmp_path)
    monkeypatch.delenv(FLAVOUR_ENV)
    with pytest.raises(DevDBError, match="mariadb, mysql"):
        DevDB(tmp_path, flavour="oracle")


def test_missing_mysql_root_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv(MYSQL_ROOT_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DevDBError, match=r"install-mysql\.sh"):
        MySQLRoot.find()


def test_mysql_root_runs_programs_through_its_own_loader(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    loader = tmp_path / "usr/lib64/ld-linux-x86-64.so.2"
    mysqld = tmp_path / "usr/sbin/mysqld"
    for path in (loader, mysqld):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    loader.chmod(loader.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(MYSQL_ROOT_ENV, str(tmp_path))
    root = MySQLRoot.find()
    cmd = root.command(root.mysqld)
    assert cmd[0] == str(loader) and cmd[-1] == str(mysqld)
    assert cmd[1:3] == ["--library-path", str(tmp_path / "usr/lib/x86_64-linux-gnu")]
    assert any(a == f"--plugin-dir={tmp_path / 'usr/lib/mysql/plugin'}"
               for a in root.server_args())
    assert root.env()["OPENSSL_CONF"].startswith(os.fspath(tmp_path))
