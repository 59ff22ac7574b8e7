"""The session database requires authentication: nobody logs in without a password, the runtime
role cannot change the schema, and the passfile holding its password is readable by httpd's User
only. Code in a Spark session runs on the same host; these are the doors it would try."""

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

import livy_harness as h

# An unprivileged local user with no passfile of its own, standing in for code in a session.
STRANGER = "nobody"


def psql_as_stranger(pg, role: str, host: str) -> subprocess.CompletedProcess:
    """psql as STRANGER, never prompting, with no password from anywhere: no PGPASSWORD, and a
    passfile that does not exist (not even ~/.pgpass)."""
    env = {"PATH": "/usr/bin:/bin", "PGPASSFILE": "/nonexistent/pgpass", "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(
        ["runuser", "-u", STRANGER, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
         str(pg.bin / "psql"), "-X", "-w", "-h", host, "-p", str(pg.port), "-U", role, "-d", "livy",
         "-tAc", "SELECT current_user"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=30)


@pytest.fixture(scope="module", autouse=True)
def running_as_root():
    # The checks need a second OS user; the suite runs as root (as scripts/run-tests does).
    if not h.IS_ROOT:
        pytest.fail("test_db_auth.py must run as root (it runs psql as another user)", pytrace=False)


@pytest.mark.parametrize("role", ["livy", "postgres", h.OWNER_ROLE])
def test_no_password_over_tcp_is_refused(pg, role):
    r = psql_as_stranger(pg, role, "127.0.0.1")
    assert r.returncode != 0, r.stdout
    assert "no password supplied" in r.stderr, r.stderr


@pytest.mark.parametrize("role", ["livy", "postgres", h.OWNER_ROLE])
def test_a_wrong_password_over_tcp_is_refused(pg, role):
    env = {"PATH": "/usr/bin:/bin", "PGPASSFILE": "/nonexistent/pgpass", "PGPASSWORD": "guess"}
    r = subprocess.run(
        ["runuser", "-u", STRANGER, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
         str(pg.bin / "psql"), "-X", "-w", "-h", "127.0.0.1", "-p", str(pg.port), "-U", role,
         "-d", "livy", "-tAc", "SELECT 1"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=30)
    assert r.returncode != 0, r.stdout
    assert f'password authentication failed for user "{role}"' in r.stderr, r.stderr


@pytest.mark.parametrize("role", ["livy", "postgres", h.OWNER_ROLE])
def test_no_password_over_the_unix_socket_is_refused(pg, role):
    # The socket is reachable (the cluster's directories are traversable, as on a real host), so
    # it is authentication that refuses: peer, since the OS user is not the role.
    r = psql_as_stranger(pg, role, str(pg.sock_dir))
    assert r.returncode != 0, r.stdout
    assert f'Peer authentication failed for user "{role}"' in r.stderr, r.stderr


def test_the_runtime_role_has_no_special_powers(pg):
    assert pg.psql("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                   "FROM pg_roles WHERE rolname = 'livy'", db="postgres") == [("f", "f", "f", "f", "f")]
    assert pg.psql("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                   "WHERE r.rolname = 'livy'", db="postgres") == [("0",)]


def run_as_runtime_role(pg, sql: str) -> subprocess.CompletedProcess:
    """sql as the role `livy`, the way the module logs in: as httpd's User, with its conninfo."""
    return subprocess.run(
        h.as_user_prefix(h.RUN_USER) + ["env", "-i", "PATH=/usr/bin:/bin", str(pg.bin / "psql"), "-X", "-w",
                                        "-v", "ON_ERROR_STOP=1", pg.conninfo(), "-tAc", sql],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=30)


def test_the_runtime_role_logs_in_with_the_passfile_and_reads_and_writes_rows(pg):
    r = run_as_runtime_role(pg, "SELECT current_user, (SELECT count(*) >= 0 FROM sessions)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "livy|t"
    assert "WARNING" not in r.stderr, r.stderr  # libpq warns about, then ignores, a loose passfile


@pytest.mark.parametrize("sql", [
    "CREATE TABLE intruder (x int)",
    "CREATE TEMP TABLE intruder (x int)",
    "DROP TABLE sessions",
    "ALTER TABLE sessions ADD COLUMN intruder int",
    "TRUNCATE session_log",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE SCHEMA intruder",
])
def test_the_runtime_role_cannot_change_the_schema(pg, sql):
    before = pg.psql("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")
    r = run_as_runtime_role(pg, sql)
    assert r.returncode != 0, f"{sql!r} succeeded as livy"
    assert "permission denied" in r.stderr or "must be owner" in r.stderr, r.stderr
    assert pg.psql("SELECT to_regclass('sessions') IS NOT NULL") == [("t",)]
    assert pg.psql("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == before


def test_the_schema_belongs_to_the_owner_role(pg):
    owners = pg.psql("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                     "WHERE relnamespace = 'public'::regnamespace")
    assert owners == [(h.OWNER_ROLE,)]


def test_the_passfiles_are_for_their_readers_only(pg):
    run_user = pwd.getpwnam(h.RUN_USER)
    d = os.stat(pg.secrets)
    assert stat.S_IMODE(d.st_mode) == 0o750 and d.st_uid == 0 and d.st_gid == run_user.pw_gid
    runtime = os.stat(pg.passfile)
    assert stat.S_IMODE(runtime.st_mode) == 0o600 and runtime.st_uid == run_user.pw_uid
    admin = os.stat(pg.admin_passfile)
    assert stat.S_IMODE(admin.st_mode) == 0o600 and admin.st_uid == 0
    for f in (pg.passfile, pg.admin_passfile):
        r = subprocess.run(["runuser", "-u", STRANGER, "--", "cat", str(f)],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
    # httpd's User reads its own passfile, never the administrator's.
    r = subprocess.run(h.as_user_prefix(h.RUN_USER) + ["cat", str(pg.admin_passfile)],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    # No password in the conninfo itself: it goes into httpd's and the supervisor's config files.
    assert "password" not in pg.conninfo().replace("passfile", "")
    assert f"passfile={pg.passfile}" in pg.conninfo()


def test_the_module_serves_sessions_with_the_passfile_conninfo(livy_server, clean_db, mpm):
    server = livy_server(mpm=mpm, supervisor="managed")
    assert f"passfile={clean_db.passfile}" in server.conninfo
    assert "user=livy " in server.conninfo + " "
    r = server.get("/sessions")
    assert r.status_code == 200, r.text
    assert r.json() == {"from": 0, "total": 0, "sessions": []}
    # The managed supervisor (httpd's User, the same conninfo) logged in and registered.
    deadline = time.monotonic() + 30
    while clean_db.psql("SELECT count(*) FROM supervisors WHERE stopped_at IS NULL") == [("0",)]:
        assert time.monotonic() < deadline, f"the managed supervisor did not register:\n{server.log_tail()}"
        time.sleep(0.2)


@pytest.fixture
def local_base():
    # Under /tmp itself: postgres and httpd's User must reach it (pytest's tmp_path is private).
    d = Path(tempfile.mkdtemp(prefix="livy-local-auth-"))
    d.chmod(0o755)
    yield d
    if not os.environ.get("LIVY_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


def test_livy_local_sets_up_the_same(local_base):
    """scripts/livy-local: passwords only, passfiles for their readers, the runtime role in both
    configurations, no DDL for it."""
    base = local_base
    state, port = base / "state", h.free_port()
    psql = str(h.pg_bin() / "psql")
    env = dict(os.environ, LIVY_LOCAL_DIR=str(state), LIVY_PORT=str(port))
    env.pop("LIVY_HTTPD_CONF_EXTRA", None)

    def livy_local(command):
        return subprocess.run([str(h.ROOT / "scripts" / "livy-local"), command], env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=600)

    r = livy_local("start")
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert requests_get(f"http://127.0.0.1:{port}/sessions") == {"from": 0, "total": 0, "sessions": []}
        secrets_dir, passfile = state / "secrets", state / "secrets" / "pgpass"
        run_user = pwd.getpwnam(h.RUN_USER)
        d = os.stat(secrets_dir)
        assert stat.S_IMODE(d.st_mode) == 0o750 and (d.st_uid, d.st_gid) == (0, run_user.pw_gid)
        f = os.stat(passfile)
        assert stat.S_IMODE(f.st_mode) == 0o600 and f.st_uid == run_user.pw_uid
        admin = os.stat(secrets_dir / "pgpass-admin")
        assert stat.S_IMODE(admin.st_mode) == 0o600 and admin.st_uid == 0
        pg_port = (state / "pg" / "port").read_text().strip()
        conninfo = f"host=127.0.0.1 port={pg_port} dbname=livy user=livy passfile={passfile}"
        assert f'LivyDatabase "{conninfo}"' in (state / "httpd" / "httpd.conf").read_text()
        assert f"database = {conninfo}\n" in (state / "supervisor" / "livy-supervisor.conf").read_text()
        for role in ("livy", "postgres", h.OWNER_ROLE):
            r = subprocess.run(["runuser", "-u", STRANGER, "--", "env", "-i", "PATH=/usr/bin:/bin",
                                "PGPASSFILE=/nonexistent/pgpass", psql, "-X", "-w", "-h", "127.0.0.1",
                                "-p", pg_port, "-U", role, "-d", "livy", "-c", "SELECT 1"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=30)
            assert r.returncode != 0 and "no password supplied" in r.stderr, r
        r = subprocess.run(h.as_user_prefix(h.RUN_USER) + ["env", "-i", "PATH=/usr/bin:/bin", psql, "-X", "-w",
                                                           conninfo, "-tAc", "CREATE TABLE intruder (x int)"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=30)
        assert r.returncode != 0 and "permission denied" in r.stderr, r
    finally:
        stop = livy_local("stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr


def requests_get(url):
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()
