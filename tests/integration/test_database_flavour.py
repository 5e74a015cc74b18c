"""The suites run against the database flavour they were asked for (POINTS_MESH_DB_FLAVOUR):
`make test-mysql` must not pass on MariaDB by mistake, and the application account keeps the
server's default authentication plugin (MySQL: caching_sha2_password, which the servers meet
over plain TCP on loopback: TLS for the Python driver, the server's RSA key for libmariadb)."""

from __future__ import annotations

from pointsmesh.devdb import DevDB, default_flavour


def test_the_database_is_the_flavour_asked_for(db: DevDB) -> None:
    assert db.flavour == default_flavour()
    version = db.sql("SELECT VERSION()").strip()
    assert ("MariaDB" in version) == (db.flavour == "mariadb"), version


def test_the_app_account_uses_the_default_plugin(db: DevDB) -> None:
    """sql/app-user.sql.in names no plugin; MySQL 9 has no mysql_native_password at all."""
    plugin = db.sql(
        f"SELECT plugin FROM mysql.user WHERE user = '{db.app_user}' AND host = '%'"
    ).strip()
    expected = "caching_sha2_password" if db.flavour == "mysql" else "mysql_native_password"
    assert plugin == expected
