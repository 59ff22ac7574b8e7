"""Fixture machinery for mod_livy's integration tests, in the manner of httpd's test/pyhttpd.

Throwaway PostgreSQL clusters (PgCluster), httpd servers with mod_livy rendered into a temporary
ServerRoot (LivyServer), and the checks that a test leaves no error-log noise and no process behind.
conftest.py turns these into pytest fixtures; tests normally use those, not this module directly.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import pwd
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "mod_livy" / ".libs" / "mod_livy.so"
SUPERVISOR = ROOT / "supervisor" / "livy-supervisor"
SQL_DIR = ROOT / "sql"
REPL_DRIVER = ROOT / "repl" / "livy_repl.py"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
HTTPD = Path(os.environ.get("LIVY_HTTPD", "/usr/sbin/apache2"))
HTTPD_MODULES = Path(os.environ.get("LIVY_HTTPD_MODULES", "/usr/lib/apache2/modules"))
IS_ROOT = os.geteuid() == 0
RUN_USER = os.environ.get("LIVY_HTTPD_USER", "www-data")
# The account REPL children run as (scripts/install-deps creates it).
REPL_USER = os.environ.get("LIVY_REPL_USER", "livy-repl")
ALL_MPMS = ("event", "prefork")


class HarnessError(Exception):
    """Something the harness needs is missing or did not start; the message says what to do."""


# ------------------------------------------------------------------ processes and ports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from "state" on


def process_alive(pid: int | None) -> bool:
    """True when pid exists and is not a zombie (daemons are reaped by init, maybe late)."""
    if not pid:
        return False
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def process_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains text (e.g. a server's temp directory)."""
    me = os.getpid()
    return [p for p in all_pids() if p != me and text in process_cmdline(p) and process_alive(p)]


def session_members(sid: int) -> list[int]:
    """Live processes in process session sid (a REPL child runs in its own, with its JVM)."""
    out = []
    for p in all_pids():
        f = _stat_fields(p)
        if f and f[0] != "Z" and f[3] == str(sid):
            out.append(p)
    return out


def listening_sockets(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state that one of pids holds."""
    inodes: dict[str, int] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = fd.readlink().as_posix()
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = f[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if v6:
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                ip6 = ipaddress.IPv6Address(b"".join(words))
                addr = str(ip6.ipv4_mapped or ip6)
            else:
                addr = ".".join(str(b) for b in raw[::-1])
            out.append((inodes[f[9]], addr, int(hex_port, 16)))
    return out


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Polls predicate until it returns something true (returned), or fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_gone(pids, timeout: float) -> list[int]:
    """Waits until none of pids is alive; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if process_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if process_alive(p)]
    return left


def terminate(pids, grace: float = 10.0) -> list[int]:
    """TERM, then KILL after grace what remains; returns the pids that needed the KILL."""
    pids = [p for p in pids if process_alive(p)]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    left = wait_gone(pids, grace)
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(left, 5)
    return left


def as_user_prefix(user: str) -> list[str]:
    return ["runuser", "-u", user, "--"] if IS_ROOT else []


def chown_to(path: Path, user: str) -> None:
    if IS_ROOT:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _run(cmd, what: str, **kw) -> subprocess.CompletedProcess:
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise HarnessError(f"{what} failed (exit {r.returncode}): {' '.join(map(str, cmd))}\n"
                           f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def asan_runtime() -> str | None:
    """The ASan runtime the module links, when it was built with --enable-asan: a non-ASan httpd
    must preload it for the module to load."""
    if not MODULE.exists():
        return None
    r = subprocess.run(["ldd", str(MODULE)], capture_output=True, text=True)
    m = re.search(r"(\S*libasan\.so[.\d]*) => (\S+)", r.stdout)
    return m.group(2) if m else None


def require_built() -> None:
    """The suite tests the build; a missing build is a failure, never a skip."""
    missing = [str(p) for p in (MODULE, SUPERVISOR) if not p.exists()]
    if missing:
        raise HarnessError("not built: " + ", ".join(missing) + ": run scripts/run-tests (or make)")


def check_spark() -> str:
    """Spark must be usable by the REPL children (as httpd's User): pyspark importable from the
    venv and Java 17+. Returns pyspark's version; raises HarnessError saying what is missing."""
    r = subprocess.run(as_user_prefix(RUN_USER) + [str(VENV_PYTHON), "-c", "import pyspark; print(pyspark.__version__)"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise HarnessError(f"pyspark is not importable by {RUN_USER} from {VENV_PYTHON}: run scripts/install-deps\n"
                           f"{r.stderr[-2000:]}")
    j = subprocess.run(["java", "-version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    m = re.search(r'version "(\d+)', j.stderr)
    if j.returncode != 0 or not m or int(m.group(1)) < 17:
        raise HarnessError(f"Spark 4 needs Java 17+: `java -version` says {j.stderr.strip()[:200]!r}: "
                           "run scripts/install-deps")
    return r.stdout.strip()


# ------------------------------------------------------------------ PostgreSQL


def pg_bin() -> Path:
    env = os.environ.get("LIVY_PG_BIN")
    candidates = [Path(env)] if env else sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                                                key=lambda p: int(p.parent.name), reverse=True)
    for c in candidates:
        if (c / "pg_ctl").exists():
            return c
    raise HarnessError("PostgreSQL server binaries not found: install the Debian package postgresql")


OWNER_ROLE = "livy_owner"  # owns the schema; `livy-supervisor --migrate` runs as it
RUNTIME_ROLE = "livy"       # what the module and the supervisor log in as: DML only, no DDL


class PgCluster:
    """A throwaway PostgreSQL cluster in base/name, owned by the postgres user when we are root,
    listening on 127.0.0.1 on a free port that it keeps across stop/start.

    Set up as a real site should be (see README.md): scram-sha-256 over TCP and peer on the Unix
    socket, so nothing logs in without a password; generated passwords kept in libpq passfiles
    under base/name-secrets (0750, root:httpd's group): `pgpass` (httpd's User, 0600) with the
    runtime role's, for the module and the supervisor, and `pgpass-admin` (root, 0600) with the
    superuser's and the owner role's, for psql() and migrations. The runtime role gets DML on
    what the owner role creates, through default privileges set before the first migration."""

    def __init__(self, base: Path, name: str = "pg"):
        self.dir = Path(base) / name
        self.data = self.dir / "data"
        self.sock_dir = self.dir / "run"
        self.log = self.dir / "postgres.log"
        self.secrets = Path(base) / f"{name}-secrets"
        self.passfile = self.secrets / "pgpass"
        self.admin_passfile = self.secrets / "pgpass-admin"
        self.port: int | None = None
        self.bin = pg_bin()

    # -- lifecycle
    def _as_pg(self, *cmd, what: str, **kw):
        return _run(as_user_prefix("postgres") + list(cmd), what, **kw)

    def setup(self, dbname: str = "livy", migrate: bool = True) -> "PgCluster":
        """initdb, start, roles, database livy, migrations: the usual one-call setup."""
        self.init()
        self.start()
        self.create_roles()
        self.create_database(dbname, migrate=migrate)
        return self

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        chown_to(self.dir, "postgres")
        # Traversable, so that any local user reaches the socket (as on a real host) and the
        # tests show that peer authentication, not a directory mode, turns them away.
        os.chmod(self.dir, 0o755)
        self._write_passfiles()
        pwfile = self.dir / "initdb-pw"
        pwfile.write_text(self._passwords["postgres"] + "\n")
        pwfile.chmod(0o600)
        chown_to(pwfile, "postgres")
        try:
            self._as_pg(self.bin / "initdb", "-D", self.data, "-U", "postgres",
                        "--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", what="initdb")
        finally:
            pwfile.unlink()
        self._as_pg("mkdir", "-p", "-m", "0755", self.sock_dir, what="mkdir")
        conf = textwrap.dedent(f"""\
            # throwaway cluster for mod_livy's integration tests: speed over durability
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '{self.sock_dir}'
            password_encryption = 'scram-sha-256'
            max_connections = 300
            shared_buffers = 32MB
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            include_if_exists = 'port.conf'
            """)
        self._as_pg("sh", "-c", f"cat >> '{self.data}/postgresql.conf'", what="configure", input=conf)

    def _write_passfiles(self) -> None:
        """Fresh random passwords, in a runtime passfile for httpd's User and an admin one for
        root. libpq ignores a passfile that its group or others may read, so each is 0600 and
        owned by the one user that reads it; the directory keeps everyone else out."""
        self._passwords = {r: secrets.token_urlsafe(32) for r in ("postgres", OWNER_ROLE, RUNTIME_ROLE)}
        self.secrets.mkdir(mode=0o750, exist_ok=True)
        self.secrets.chmod(0o750)
        if IS_ROOT:
            os.chown(self.secrets, 0, pwd.getpwnam(RUN_USER).pw_gid)

        def write(path: Path, roles, user: str | None) -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("".join(f"127.0.0.1:*:*:{r}:{self._passwords[r]}\n" for r in roles))
            if user:
                chown_to(path, user)

        write(self.passfile, (RUNTIME_ROLE,), RUN_USER)
        write(self.admin_passfile, ("postgres", OWNER_ROLE), None)

    def start(self) -> None:
        if self.port is None:
            self.port = free_port()
        self._as_pg("sh", "-c", f"cat > '{self.data}/port.conf'", what="configure",
                    input=f"port = {self.port}\n")
        try:
            self._as_pg(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start",
                        what="pg_ctl start")
        except HarnessError as e:
            raise HarnessError(f"{e}\n{self.log_tail()}") from None

    def stop(self, mode: str = "fast") -> None:
        self._as_pg(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop",
                    what="pg_ctl stop")

    def running(self) -> bool:
        r = subprocess.run(as_user_prefix("postgres") + [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
                           capture_output=True)
        return r.returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            try:
                self.stop("immediate")
            except HarnessError:
                pass
        left = pids_mentioning(str(self.data))
        terminate(left)
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.secrets, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "---- " + str(self.log) + "\n" + "\n".join(self.log.read_text().splitlines()[-n:])
        except OSError:
            return ""

    # -- roles, databases and SQL
    def conninfo(self, dbname: str = "livy", user: str = RUNTIME_ROLE) -> str:
        """The runtime role's conninfo reads the runtime passfile (httpd's User); any other
        role's the admin one (root)."""
        passfile = self.passfile if user == RUNTIME_ROLE else self.admin_passfile
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} passfile={passfile}"

    NULL = "\x02NULL\x02"

    def psql_env(self) -> dict:
        """The environment for a psql (or any libpq client) of ours that logs in as the superuser
        or the owner role: their passwords come from the admin passfile, never the command line."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = str(self.admin_passfile)
        return env

    def psql(self, sql: str, db: str = "livy", user: str = "postgres") -> list[tuple]:
        """Runs sql (one or more statements) as user (the superuser unless told; a role of the
        admin passfile) and returns the rows of the last one, as tuples of strings (None for
        NULL)."""
        r = _run([self.bin / "psql", "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
                  "-F", "\x1f", "-R", "\x1e", "-P", f"null={self.NULL}",
                  "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db, "-c", sql], "psql",
                 env=self.psql_env())
        out = r.stdout.rstrip("\n")
        if not out:
            return []
        return [tuple(None if v == self.NULL else v for v in rec.split("\x1f"))
                for rec in out.split("\x1e") if rec != ""]

    def create_roles(self) -> None:
        """The owner role for migrations and the runtime role, with the passwords of the
        passfiles. The SQL goes on stdin: a command line is readable by every local user."""
        sql = "".join(
            f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"PASSWORD '{self._passwords[role]}';\n" for role in (OWNER_ROLE, RUNTIME_ROLE))
        _run([self.bin / "psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
              "-p", str(self.port), "-U", "postgres", "-d", "postgres"], "create roles",
             input=sql, env=self.psql_env())

    def create_database(self, name: str, migrate: bool = True) -> str:
        """Creates database name, owned by the owner role, that only the runtime role may
        connect to besides; the runtime role gets DML (never DDL) on every table and sequence
        the owner creates there. Migrates it unless told not to. Returns the runtime conninfo."""
        self.psql(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}', db="postgres")
        self.psql(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC; '
                  f'GRANT CONNECT ON DATABASE "{name}" TO {RUNTIME_ROLE}', db="postgres")
        self.psql(f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}; "
                  "REVOKE ALL ON SCHEMA public FROM PUBLIC; "
                  f"GRANT USAGE ON SCHEMA public TO {RUNTIME_ROLE}; "
                  f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
                  f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {RUNTIME_ROLE}; "
                  f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
                  f"GRANT USAGE, SELECT ON SEQUENCES TO {RUNTIME_ROLE}", db=name)
        if migrate:
            self.migrate(name)
        return self.conninfo(name)

    def migrate(self, dbname: str = "livy") -> None:
        """livy-supervisor --migrate, as the owner role."""
        require_built()
        conf = self.dir.parent / f"migrate-{self.dir.name}-{dbname}.conf"
        run_dir = self.dir.parent / "migrate-run"
        run_dir.mkdir(exist_ok=True)
        owner = self.conninfo(dbname, OWNER_ROLE)
        conf.write_text(render_supervisor_conf(owner, run_dir))
        _run([SUPERVISOR, "--config", conf, "--migrate", "--database", owner],
             "livy-supervisor --migrate")

    def listen(self, *channels: str, dbname: str = "livy") -> "Listener":
        """A psql session LISTENing on channels (use it as a context manager)."""
        return Listener(self, channels, dbname)

    def snapshot(self, dbname: str = "livy") -> dict:
        """Every row the service writes: per table, the row count and a digest of the full
        contents. Equal snapshots before and after a request show it changed nothing."""
        tables = (("sessions", "id"), ("statements", "session_id, id"),
                  ("session_log", "session_id, seq"), ("session_count", "listed"),
                  ("batches", "id"), ("batch_log", "batch_id, seq"), ("batch_count", "listed"))
        parts = []
        for table, order in tables:
            parts.append(f"(SELECT count(*) FROM {table})")
            parts.append(f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY {order}), '')) "
                         f"FROM {table} t)")
        values = self.psql("SELECT " + ", ".join(parts), db=dbname)[0]
        return {table: values[2 * i:2 * i + 2] for i, (table, _) in enumerate(tables)}

    def clear(self, dbname: str = "livy") -> None:
        """Removes all rows the service writes, between tests (sequences are not reset)."""
        self.psql("DELETE FROM statements; DELETE FROM session_log; DELETE FROM sessions; "
                  "DELETE FROM batch_log; DELETE FROM batches; DELETE FROM supervisors;", db=dbname)


class Listener:
    """A psql session that LISTENs on some channels from its start; received() ends it and
    returns the notifications that arrived meanwhile, in order, as (channel, payload) pairs (psql
    prints them when its next query completes)."""

    NOTIFICATION = re.compile(r'Asynchronous notification "(\w+)" with payload "([^"]*)" received')

    def __init__(self, pg: PgCluster, channels, dbname: str):
        self.proc = subprocess.Popen(
            [str(pg.bin / "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
             "postgres", "-d", dbname, "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=pg.psql_env())
        self.proc.stdin.write("".join(f"LISTEN {c};\n" for c in channels) + "\\echo listening\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "listening":
            self.close()
            raise HarnessError(f"psql did not LISTEN on {', '.join(channels)}")

    def received(self) -> list[tuple[str, str]]:
        out, errout = self.proc.communicate("SELECT 'done';\n", timeout=30)
        self.output = out + errout
        return self.NOTIFICATION.findall(out)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def request_as(server: "LivyServer", user: str | None, method: str, path: str, **kw) -> requests.Response:
    """One request to server as user, with Basic auth and password(user) (None: no credentials),
    on a connection of its own."""
    kw.setdefault("timeout", 30)
    auth = (user, password(user)) if user else None
    return requests.request(method, server.url + path, auth=auth, **kw)


# ------------------------------------------------------------------ httpd with mod_livy


def isolation_settings() -> dict:
    """How the tests isolate REPLs: as root, the supervisor drops to httpd's User and starts
    every REPL as REPL_USER in namespaces of its own; without root that cannot be done."""
    if IS_ROOT:
        return {"user": RUN_USER, "group": RUN_USER, "repl_user": REPL_USER}
    return {"repl_isolation": "off"}


def render_supervisor_conf(conninfo: str, run_dir: Path, python: Path = VENV_PYTHON, **extra) -> str:
    settings = {
        "database": conninfo,
        "run_dir": run_dir,
        "sql_dir": SQL_DIR,
        "python": python,
        "repl_driver": REPL_DRIVER,
        "spark_master": "local[1]",
        **isolation_settings(),
    }
    settings.update(extra)
    lines = ["# livy-supervisor configuration rendered by tests/integration/livy_harness.py"]
    lines += [f"{k} = {v}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


MPM_CONF = {
    "event": """\
        LoadModule mpm_event_module {mods}/mod_mpm_event.so
        StartServers 2
        ServerLimit 4
        ThreadsPerChild 10
        MaxRequestWorkers 40
        MinSpareThreads 10
        MaxSpareThreads 30
        # LivyServer.stop stops the event MPM gracefully; a child still busy after this long is
        # stopped the hard way.
        GracefulShutdownTimeout 10
        # Longer than the polling intervals of Livy clients (pylivy polls every 5 s, httpd's
        # default timeout): see README, "Keep-alive and polling clients".
        KeepAliveTimeout 30
        """,
    "prefork": """\
        LoadModule mpm_prefork_module {mods}/mod_mpm_prefork.so
        StartServers 3
        MinSpareServers 2
        MaxSpareServers 6
        ServerLimit 16
        MaxRequestWorkers 16
        """,
}

def make_durable(pg: "PgCluster") -> None:
    """fsync and synchronous_commit back on (the tests' clusters run without them), for the
    benchmarks' --durable: commits wait for the disk as in production."""
    pg.psql("ALTER SYSTEM SET fsync = on")
    pg.psql("ALTER SYSTEM SET synchronous_commit = on")
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(0.5)


# The event MPM as README's "Tuning the event MPM" recommends it (scripts/bench-api measures it).
TUNED_EVENT_MPM = """\
    StartServers 2
    ServerLimit 4
    ThreadsPerChild 64
    MaxRequestWorkers 256
    MinSpareThreads 64
    MaxSpareThreads 256
    KeepAliveTimeout 30
    MaxKeepAliveRequests 0
    """

LOG_LINE = re.compile(r"^\[[^\]]*\] \[(?:([\w.-]+):)?(\w+)\]")
# livy-supervisor's own lines, which reach the error log through its stderr in managed mode:
# "2026-01-01 12:00:00.000 [error] livy-supervisor[123]: ..."
SUPERVISOR_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \[(\w+)\] livy-supervisor\[")
BAD_LEVELS = {"error", "crit", "alert", "emerg"}
# Bad at any level, and also in raw lines a child wrote to stderr.
ALWAYS_BAD = re.compile(r"AH00052|exit signal|Segmentation fault|AddressSanitizer|LeakSanitizer|"
                        r"runtime error:|double free|stack smashing")
# The event MPM's shutdown race (see LivyServer._during_stop).
SHUTDOWN_RACE = re.compile(r"\(9\)Bad file descriptor: AH0309[23]: ")


def password(user: str) -> str:
    """The Basic auth password the tests give each user."""
    return f"{user}-secret"


def write_htpasswd(path: Path, users) -> Path:
    """An htpasswd file (apr1 hashes, by httpd's own tool) for users, with password(user)."""
    for i, user in enumerate(users):
        subprocess.run(["htpasswd", "-b", "-m"] + (["-c"] if i == 0 else [])
                       + [str(path), user, password(user)], check=True, capture_output=True)
    path.chmod(0o644)  # httpd's children read it as their User
    return path


def shipped_error_documents() -> list[str]:
    """The ErrorDocument lines conf/livy.conf ships (they point httpd's errors into the mount)."""
    lines = [line.strip() for line in (ROOT / "conf" / "livy.conf").read_text().splitlines()
             if re.match(r"(?i)\s*ErrorDocument\s", line)]
    if not lines:
        raise HarnessError("conf/livy.conf ships no ErrorDocument lines")
    return lines


def basic_auth_conf(htpasswd: Path, policy: str = "", error_documents: bool = False) -> str:
    """httpd configuration: Basic auth from htpasswd for the whole server (<Location />), with
    `policy` (Livy directives, one per line) in that location, and the shipped ErrorDocument
    lines there when asked."""
    m = HTTPD_MODULES
    inner = "".join(f"    {line.strip()}\n" for line in policy.splitlines() if line.strip())
    if error_documents:
        inner += "".join(f"    {line}\n" for line in shipped_error_documents())
    return (f"LoadModule auth_basic_module {m}/mod_auth_basic.so\n"
            f"LoadModule authn_core_module {m}/mod_authn_core.so\n"
            f"LoadModule authn_file_module {m}/mod_authn_file.so\n"
            f"LoadModule authz_user_module {m}/mod_authz_user.so\n"
            "<Location />\n"
            "    AuthType Basic\n"
            '    AuthName "livy"\n'
            "    AuthBasicProvider file\n"
            f'    AuthUserFile "{htpasswd}"\n'
            "    Require valid-user\n"
            f"{inner}"
            "</Location>\n")


def policy_mount(path: str, directives: str) -> str:
    """A <Location path> section with its own directives (one per line) inside a Basic-auth
    server (basic_auth_conf): httpd redirects its 401 ErrorDocument into the same mount, so that
    the error page needs no credentials of its own."""
    return f"<Location {path}>\n    ErrorDocument 401 {path}/error\n{directives}\n</Location>\n"


# Lines httpd's auth modules write for a wrong password or an unknown user.
AUTH_FAILURE_LINES = (r"AH01617: user \w+: authentication failure", r"AH01618: user \w+ not found")


def _allow_core_dumps() -> None:
    """In httpd's starter (it passes the limit on to its children): cores of any size."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


class LivyServer:
    """One httpd with mod_livy in its own ServerRoot under base/name."""

    def __init__(self, base: Path, name: str, db: PgCluster | None, mpm: str = "event",
                 supervisor: bool | str = False, extra_conf: str = "", dbname: str = "livy",
                 conninfo: str | None = None, log_level: str = "info", supervisor_conf: dict | None = None,
                 proxy: bool = True, mpm_conf: str | None = None):
        if mpm not in MPM_CONF:
            raise ValueError(f"mpm must be one of {sorted(MPM_CONF)}")
        if supervisor not in (False, None, "managed", "external"):
            raise ValueError("supervisor must be False, 'managed' or 'external'")
        self.root = Path(base) / name
        self.db = db
        self.mpm = mpm
        self.supervisor = supervisor or False
        self.extra_conf = extra_conf
        self.conninfo = conninfo or (db.conninfo(dbname) if db else "host=127.0.0.1 port=1 dbname=livy user=livy")
        self.log_level = log_level
        self.supervisor_conf_extra = supervisor_conf or {}
        self.proxy = proxy  # load mod_proxy and mod_proxy_http (sessions' Spark UIs)
        self.mpm_conf = mpm_conf  # the MPM's settings, instead of MPM_CONF's (the LoadModule stays)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf_path = self.root / "httpd.conf"
        self.error_log = self.root / "logs" / "error_log"
        self.pid_file = self.root / "run" / "httpd.pid"
        self.run_dir = self.root / "supervisor" / "run"
        self.home_dir = self.root / "supervisor" / "home"
        self.supervisor_conf_path = self.root / "supervisor" / "livy-supervisor.conf"
        self.pid: int | None = None
        self._stop_sent: float | None = None
        self.allowed: list[re.Pattern] = []
        self.http = requests.Session()
        self._external: subprocess.Popen | None = None
        self._asan = asan_runtime()

    # -- configuration
    def allow_errors(self, *patterns: str) -> None:
        """Error-log lines matching any of patterns (regex, searched) do not fail the test."""
        self.allowed += [re.compile(p) for p in patterns]

    def preamble(self) -> str:
        """The lines every httpd.conf of ours starts with: where it lives, listens and logs."""
        return (
            f'ServerRoot "{self.root}"\n'
            "ServerName 127.0.0.1\n"
            f"Listen 127.0.0.1:{self.port}\n"
            f'PidFile "{self.pid_file}"\n'
            f'DefaultRuntimeDir "{self.root / "run"}"\n'
            f'ErrorLog "{self.error_log}"\n'
            f"LogLevel {self.log_level}\n"
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" livy\n'
            f'CustomLog "{self.root / "logs" / "access_log"}" livy\n'
        )

    def render(self) -> str:
        user = ""
        if IS_ROOT:
            user = f"User {RUN_USER}\nGroup {RUN_USER}\n"
        # A child that crashes leaves a core there (start() lifts the core size limit), and the
        # test's failure carries its backtrace (crash_backtraces()).
        core = f'CoreDumpDirectory "{self.root / "core"}"\n'
        supervisor = ""
        if self.supervisor == "managed":
            supervisor = (f"LivySupervisor managed\n"
                          f'LivySupervisorBinary "{SUPERVISOR}"\n'
                          f'LivySupervisorConfig "{self.supervisor_conf_path}"\n')
        mpm = textwrap.dedent(MPM_CONF[self.mpm]).format(mods=HTTPD_MODULES)
        if self.mpm_conf is not None:
            mpm = mpm.splitlines()[0] + "\n" + textwrap.dedent(self.mpm_conf)
        proxy = ""
        if self.proxy:  # sessions' Spark UIs are proxied through mod_proxy (mod_livy_ui.c)
            proxy = (f"LoadModule proxy_module {HTTPD_MODULES}/mod_proxy.so\n"
                     f"LoadModule proxy_http_module {HTTPD_MODULES}/mod_proxy_http.so\n")
        return (
            "# rendered by tests/integration/livy_harness.py\n"
            + self.preamble()
            + f"{user}{core}\n"
            f"{mpm}\n"
            f"LoadModule authz_core_module {HTTPD_MODULES}/mod_authz_core.so\n"
            f"{proxy}"
            f"LoadModule livy_module {MODULE}\n"
            f'LivyDatabase "{self.conninfo}"\n'
            f"{supervisor}"
            "LivyMaxBodySize 1048576\n"
            f'LivyUIDirectory "{ROOT / "ui"}"\n'  # the tree's web UI (served with LivyUI On)
            "<Location />\n"
            "    SetHandler livy\n"
            "</Location>\n\n"
            f"{self.extra_conf}\n"
        )

    def _python_for_repl(self) -> Path:
        # supervisor_conf's `python` (another venv's interpreter) replaces the suite's.
        # Under an ASan build httpd runs with libasan preloaded; the supervisor inherits that, and
        # so would Python and the JVM it starts. They get a clean environment instead.
        python = Path(self.supervisor_conf_extra.get("python", VENV_PYTHON))
        if not self._asan:
            return python
        wrapper = self.root / "supervisor" / "python"
        wrapper.write_text(f'#!/bin/sh\nunset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS\n'
                           f'exec "{python}" "$@"\n')
        wrapper.chmod(0o755)
        return wrapper

    def check_run_user_access(self) -> None:
        """The supervisor runs as httpd's User and its REPL children as REPL_USER, from this tree."""
        if not IS_ROOT:
            return
        for user in (RUN_USER, REPL_USER):
            probe = f"test -x '{SUPERVISOR}' && test -r '{REPL_DRIVER}' && '{VENV_PYTHON}' -c ''"
            r = subprocess.run(as_user_prefix(user) + ["sh", "-c", probe], capture_output=True, text=True)
            if r.returncode != 0:
                raise HarnessError(f"user {user} cannot run {SUPERVISOR} or {VENV_PYTHON}: make {ROOT} and its "
                                   f"parent directories readable and traversable (chmod o+rx), and run "
                                   f"scripts/install-deps (it creates {REPL_USER})\n{r.stderr}")

    def write_files(self) -> None:
        for d in ("logs", "run", "core", "supervisor"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        for d in (self.root, self.root / "supervisor"):
            d.chmod(0o755)
        for d in (self.run_dir, self.home_dir):
            d.mkdir(parents=True, exist_ok=True)
            chown_to(d, RUN_USER)
        chown_to(self.root / "core", RUN_USER)
        # Both files name the database: only root (which starts httpd and the supervisor, and
        # reads them before either drops privileges) may read them.
        for path, text in ((self.supervisor_conf_path,
                            render_supervisor_conf(self.conninfo, self.run_dir, self._python_for_repl(),
                                                   **{k: v for k, v in self.supervisor_conf_extra.items()
                                                      if k != "python"})),
                           (self.conf_path, self.render())):
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(text)

    def env(self) -> dict:
        env = dict(os.environ)
        env["HOME"] = str(self.home_dir)  # the managed supervisor's (and Spark's) HOME
        if self._asan:
            env["LD_PRELOAD"] = self._asan
            # Leak checking is run-tests --asan's business (it sets ASAN_OPTIONS and suppressions).
            env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        return env

    # -- lifecycle
    def start(self, timeout: float = 60, wait_ready: bool = True) -> "LivyServer":
        require_built()
        if self.supervisor:
            self.check_run_user_access()
        self.write_files()
        self.error_log.touch()
        self._log_mark = self._log_size()
        r = subprocess.run([str(HTTPD), "-f", str(self.conf_path), "-d", str(self.root), "-k", "start"],
                           capture_output=True, text=True, env=self.env(), stdin=subprocess.DEVNULL,
                           preexec_fn=_allow_core_dumps)
        if r.returncode != 0:
            raise HarnessError(f"httpd did not start (exit {r.returncode}):\n{r.stdout}{r.stderr}\n"
                               f"{self.log_tail()}")
        self.pid = self._wait_pid(10)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def _log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0

    def _wait_pid(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid = int(self.pid_file.read_text().strip())
                if process_alive(pid):
                    return pid
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise HarnessError(f"httpd wrote no pid file within {timeout}s\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 60) -> None:
        """Waits until GET /version gets an answer from mod_livy (JSON) or an auth challenge."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not process_alive(self.pid):
                raise HarnessError(f"httpd (pid {self.pid}) exited while starting\n{self.log_tail()}")
            try:
                r = requests.get(self.url + "/version", timeout=5)
                # mod_livy answers JSON; a server whose whole URL space needs credentials
                # answers httpd's own 401 challenge, which also shows it is up.
                if (r.headers.get("Content-Type", "").startswith("application/json")
                        or (r.status_code == 401 and "WWW-Authenticate" in r.headers)):
                    return
                last = f"{r.status_code} {r.headers.get('Content-Type')} {r.text[:200]!r}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        raise HarnessError(f"{self.url}/version did not answer within {timeout}s (last: {last})\n{self.log_tail()}")

    def graceful(self, timeout: float = 30) -> None:
        """A graceful restart (SIGUSR1); returns when the new generation serves /version."""
        marker = "resuming normal operations"
        before = sum(marker in line for line in self.error_log_lines())
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while sum(marker in line for line in self.error_log_lines()) <= before:
            if time.monotonic() > deadline:
                raise HarnessError(f"graceful restart did not complete in {timeout}s\n{self.log_tail()}")
            if not process_alive(self.pid):
                raise HarnessError(f"httpd exited on graceful restart\n{self.log_tail()}")
            time.sleep(0.1)
        self.wait_ready(timeout)

    def stop(self, timeout: float = 30) -> list[str]:
        """Stops httpd, then the supervisor and REPL children it left; returns complaints about
        processes that did not go away on their own (empty when all was clean)."""
        problems = []
        # Our own keep-alive connections first, then a graceful stop for the event MPM. Its
        # ungraceful stop (SIGTERM) races in httpd itself: the child's main thread closes the
        # workers' sockets (close_worker_sockets) while a worker that just finished a connection
        # frees that socket's pool, a segfault in apr_os_sock_get with no module frame on any
        # thread (seen with Debian's 2.4.x builds). A graceful stop never takes that path:
        # idle keep-alive connections are closed by the listener and busy workers finish.
        # prefork has no such race and keeps SIGTERM (a graceful prefork child would wait for
        # any other client's keep-alive connection to time out).
        self.http.close()
        if self.pid and process_alive(self.pid):
            self._stop_sent = time.time()
            os.kill(self.pid, signal.SIGWINCH if self.mpm == "event" else signal.SIGTERM)
            if wait_gone([self.pid], timeout):
                problems.append(f"httpd (pid {self.pid}) did not stop within {timeout}s: killed")
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                wait_gone([self.pid], 5)
        self.stop_external_supervisor()
        # REPL children outlive their supervisor by design: stop each one's whole process session.
        repl = []
        for f in self.run_dir.glob("*.pid") if self.run_dir.exists() else []:
            try:
                pid = int(f.read_text().strip())
            except (OSError, ValueError):
                continue
            if f"{self.root}/" in process_cmdline(pid):
                repl += session_members(pid)
        terminate(repl)
        # Anything else still running from our ServerRoot (httpd children, a supervisor) is a leak.
        left = wait_gone(pids_mentioning(f"{self.root}/"), 10)
        if left:
            problems.append("still running after stop: " +
                            "; ".join(f"{p}: {process_cmdline(p)[:150]}" for p in left))
            terminate(left)
        self.pid = None
        self.http.close()
        return problems

    # -- an external (not managed) supervisor, started by the test
    def start_external_supervisor(self) -> subprocess.Popen:
        require_built()
        env = dict(os.environ, HOME=str(self.home_dir))
        self._supervisor_log = open(self.root / "logs" / "supervisor.log", "ab")
        # Started as root, as by systemd: it drops to its `user` itself.
        self._external = subprocess.Popen(
            [str(SUPERVISOR), "--config", str(self.supervisor_conf_path), "--foreground"],
            stdout=self._supervisor_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return self._external

    def stop_external_supervisor(self, timeout: float = 30) -> None:
        if self._external and self._external.poll() is None:
            self._external.send_signal(signal.SIGTERM)
            try:
                self._external.wait(timeout)
            except subprocess.TimeoutExpired:
                self._external.kill()
                self._external.wait()
        if self._external:
            self._supervisor_log.close()
        self._external = None

    # -- HTTP
    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.url + path, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json=None, **kw) -> requests.Response:
        return self.request("POST", path, json=json, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        return self.request("DELETE", path, **kw)

    # -- the error log
    def error_log_lines(self) -> list[str]:
        try:
            return self.error_log.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def log_tail(self, n: int = 40) -> str:
        return f"---- {self.error_log} (last {n} lines)\n" + "\n".join(self.error_log_lines()[-n:])

    def _during_stop(self, line: str) -> bool:
        """True for the event MPM's shutdown race: a worker finishing a request as the child
        stops finds the pollset gone (EBADF on keep-alive or lingering close). httpd's, not ours;
        tolerated only when logged after we sent the stop signal."""
        if self._stop_sent is None or not SHUTDOWN_RACE.search(line):
            return False
        m = re.match(r"^\[(\w{3} \w{3} +\d+ [\d:]+)(\.\d+)? (\d{4})\]", line)
        if not m:
            return False
        t = time.mktime(time.strptime(f"{m.group(1)} {m.group(3)}", "%a %b %d %H:%M:%S %Y"))
        return t + float(m.group(2) or 0) >= self._stop_sent - 0.01

    def crash_backtraces(self, limit: int = 2) -> str:
        """gdb's backtraces of the cores crashed children left (the kernel's core_pattern must be
        a plain file name, as on a default Debian), for a test failure to show where it was."""
        cores = sorted((self.root / "core").glob("core*"))[:limit]
        if not cores or not shutil.which("gdb"):
            return ""
        key = tuple((str(c), c.stat().st_mtime_ns) for c in cores)
        cache = self.__dict__.setdefault("_backtraces", {})
        if key in cache:
            return cache[key]
        out = []
        for core in cores:
            r = subprocess.run(["gdb", "-batch", "-nx", "-ex", "thread apply all bt 25", str(HTTPD),
                                str(core)], capture_output=True, text=True, timeout=120)
            out.append(f"---- {core}\n{r.stdout[-12000:]}")
        cache[key] = "\n".join(out)
        return cache[key]

    def unexpected_error_lines(self) -> list[str]:
        bad = []
        for line in self.error_log_lines():
            if self._during_stop(line):
                continue
            m = LOG_LINE.match(line)
            level = m.group(2) if m else None
            if not m:
                ms = SUPERVISOR_LINE.match(line)
                level = ms.group(1) if ms else None
            is_bad = bool(ALWAYS_BAD.search(line)) or level in BAD_LEVELS
            if is_bad and not any(p.search(line) for p in self.allowed):
                bad.append(line)
        # A crashed child's line carries the backtrace of its core (the count of lines stays).
        for i, line in enumerate(bad):
            if "exit signal" in line or "AH00052" in line:
                trace = self.crash_backtraces()
                if trace:
                    bad[i] = f"{line}\n{trace}"
                break
        return bad


@dataclass
class Answer:
    """What raw() got back."""
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


def raw(server: LivyServer, method: str, path: str, body: bytes | None = None,
        headers: dict | None = None, chunked: bool = False) -> Answer:
    """One request over a new connection, the path and body sent exactly as given (chunked in
    pieces of 1000 bytes when asked)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        hdrs = dict(headers or {})
        if chunked:
            data = body or b""
            pieces = [data[i:i + 1000] for i in range(0, len(data), 1000)]
            conn.request(method, path, body=iter(pieces), headers=hdrs, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def assert_json_msg(a: Answer) -> str:
    """a is a JSON error {"msg": "..."}: returns the message."""
    ctype = a.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/json", (a.status, ctype, a.body[:300])
    body = json.loads(a.body)
    assert isinstance(body, dict) and list(body) == ["msg"], body
    assert isinstance(body["msg"], str) and body["msg"].strip(), body
    return body["msg"]


class ServerFactory:
    """Creates LivyServers for one test and checks them all at its end."""

    def __init__(self, base: Path, default_db: PgCluster | None, label: str):
        self.base = Path(base)
        self.default_db = default_db
        self.label = label
        self.servers: list[LivyServer] = []

    _counter = 0

    def __call__(self, mpm: str = "event", supervisor: bool | str = False, extra_conf: str = "",
                 db: PgCluster | None = None, start: bool = True, **kw) -> LivyServer:
        ServerFactory._counter += 1
        # Short names: REPL sockets live under the ServerRoot, and Unix socket paths are short.
        name = f"srv{ServerFactory._counter}-{mpm}"
        server = LivyServer(self.base, name, db or self.default_db, mpm=mpm, supervisor=supervisor,
                            extra_conf=extra_conf, **kw)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def finish(self) -> list[str]:
        """Stops every server; returns the problems found (unexpected error-log lines, leftovers)."""
        problems = []
        for s in self.servers:
            for p in s.stop():
                problems.append(f"{s.root.name}: {p}")
            bad = s.unexpected_error_lines()
            if bad:
                problems.append(f"{s.root.name}: unexpected lines in {s.error_log}:\n  " + "\n  ".join(bad[:30]))
        return problems


def module_server(work_dir: Path, pg: PgCluster, label: str, allow=(), **kw):
    """The body of a module-scoped server fixture (`yield from h.module_server(...)`): one started
    server (ServerFactory's arguments in kw) for all of a test module's tests, error-log lines
    matching `allow` tolerated; stopped and checked (error log, leftovers) after the last test,
    and any problem fails through pytest."""
    import pytest

    factory = ServerFactory(work_dir, pg, label)
    try:
        server = factory(**kw)
    except HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    server.allow_errors(*allow)
    yield server
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def error_log_checked(server: LivyServer):
    """The body of a per-test fixture over a module's server (`yield from ...`): the test fails
    when the error log gained unexpected lines while it ran."""
    before = len(server.unexpected_error_lines())
    yield server
    bad = server.unexpected_error_lines()[before:]
    assert not bad, "unexpected error-log lines:\n" + "\n".join(bad)


def selected_mpms() -> list[str]:
    """The MPMs to run under: all, or those listed in LIVY_TEST_MPMS (comma or space separated)."""
    env = os.environ.get("LIVY_TEST_MPMS", "").replace(",", " ").split()
    for m in env:
        if m not in ALL_MPMS:
            raise HarnessError(f"LIVY_TEST_MPMS: unknown MPM {m!r} (known: {', '.join(ALL_MPMS)})")
    return env or list(ALL_MPMS)


# ------------------------------------------------------------------ batches (POST /batches)
# What test_batches.py and test_batch_clients.py share: a directory of batch files for a server's
# LivyBatchAllowedPaths, a client for the batch routes, and the facts only the database and /proc
# know (a batch's row, its processes). PgCluster.snapshot covers the batch tables.

BATCH_STATES = {"starting", "running", "success", "dead", "killed"}
BATCH_ENDED = {"success", "dead", "killed"}
BATCH_KEYS = ["id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"]
BATCH_TIMEOUT = 240  # spark-submit runs overlap on two busy cores


def batch_files_dir(prefix: str = "livy-batches-") -> Path:
    """A directory for batch files that the REPL account can read from inside its namespaces:
    outside /tmp, which every REPL and batch gets a private copy of, so under /var/tmp."""
    import tempfile  # only this block needs it
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    d.chmod(0o755)
    return d


def write_batch_file(directory: Path, name: str, text: str) -> Path:
    """A batch file the REPL account may read (0644 in a 0755 directory)."""
    path = Path(directory) / name
    path.write_text(textwrap.dedent(text))
    path.chmod(0o644)
    return path


def pi_batch(app_name: str, n: int = 200000) -> str:
    """A batch that estimates pi with Spark over 2 partitions and prints "Pi is roughly ..." on
    its stdout (write it with write_batch_file)."""
    return f"""\
        # Estimates pi with Spark: the batch's stdout carries the answer.
        from operator import add
        from random import random

        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName({app_name!r}).getOrCreate()
        n = {n}


        def inside(_):
            x = random() * 2 - 1
            y = random() * 2 - 1
            return 1 if x * x + y * y <= 1 else 0


        count = spark.sparkContext.parallelize(range(n), 2).map(inside).reduce(add)
        print("Pi is roughly %f" % (4.0 * count / n), flush=True)
        spark.stop()
        """


def pyspark_dir() -> Path:
    """The pip pyspark package of the venv (its jars/ and bin/spark-submit)."""
    r = _run([VENV_PYTHON, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
             "locating pyspark")
    return Path(r.stdout.strip())


def process_group_members(pgid: int) -> list[int]:
    """Live processes in process group pgid."""
    out = []
    for p in all_pids():
        f = _stat_fields(p)
        if f and f[0] != "Z" and f[2] == str(pgid):
            out.append(p)
    return out


def descendants(pid: int) -> list[int]:
    """Live processes below pid (children, their children, ...), pid excluded."""
    children: dict[str, list[int]] = {}
    for p in all_pids():
        f = _stat_fields(p)
        if f and f[0] != "Z":
            children.setdefault(f[1], []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(str(todo.pop()), []):
            out.append(c)
            todo.append(c)
    return out


def batch_processes(path: Path | str) -> list[int]:
    """A batch's processes, seen from the host: those whose command line names its file
    (spark-submit's JVM, the Python driver) and everything below them (PySpark's workers, which
    put themselves in a process group of their own)."""
    found = set()
    for p in pids_mentioning(str(path)):
        found.add(p)
        found.update(descendants(p))
    return sorted(p for p in found if process_alive(p))


class BatchClient:
    """The batch routes of one server as a client uses them, with the checks every answer must
    pass, plus the batches row (state, process group) that only the database shows."""

    def __init__(self, server: LivyServer, db: PgCluster, dbname: str):
        self.server = server
        self.db = db
        self.dbname = dbname

    # -- HTTP
    def create(self, **body) -> dict:
        r = self.server.post("/batches", json=body)
        assert r.status_code == 201, (r.status_code, r.text)
        b = r.json()
        assert r.headers["Location"] == f"/batches/{b['id']}", r.headers
        self.check_view(b)
        assert b["state"] in {"starting", "running"}, b
        return b

    @staticmethod
    def check_view(b: dict) -> None:
        assert list(b) == BATCH_KEYS, b
        assert isinstance(b["id"], int) and b["id"] >= 0, b
        assert b["state"] in BATCH_STATES, b
        assert list(b["appInfo"]) == ["driverLogUrl", "sparkUiUrl", "executorLogUrls"], b
        assert isinstance(b["log"], list) and len(b["log"]) <= 10, b

    def batch(self, bid: int) -> dict:
        r = self.server.get(f"/batches/{bid}")
        assert r.status_code == 200, (r.status_code, r.text)
        b = r.json()
        self.check_view(b)
        return b

    def state(self, bid: int) -> str:
        r = self.server.get(f"/batches/{bid}/state")
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert list(body) == ["id", "state"] and body["id"] == bid, body
        assert body["state"] in BATCH_STATES, body
        return body["state"]

    def log(self, bid: int) -> list[str]:
        r = self.server.get(f"/batches/{bid}/log?from=0&size=-1")
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert list(body) == ["id", "from", "total", "log"] and body["id"] == bid, body
        assert body["total"] == len(body["log"]), body
        return body["log"]

    def diagnose(self, bid: int) -> str:
        try:
            log = "\n".join(self.log(bid)[-40:])
        except (AssertionError, requests.RequestException, ValueError, KeyError) as e:
            log = f"(log: {e!r})"
        return f"\n---- batch {bid} log (tail)\n{log}\n{self.server.log_tail(25)}"

    def wait(self, bid: int, states, timeout: float = BATCH_TIMEOUT, seen: list | None = None,
             interval: float = 0.25) -> str:
        """Polls /state until the batch is in one of states; fails on another ended state."""
        states = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(bid)
            if seen is not None and (not seen or seen[-1] != state):
                seen.append(state)
            if state in states:
                return state
            if state in BATCH_ENDED:
                raise AssertionError(f"batch {bid} ended {state} while waiting for "
                                     f"{'/'.join(sorted(states))}{self.diagnose(bid)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {bid} is {state}, not {'/'.join(sorted(states))}, "
                                     f"after {timeout}s{self.diagnose(bid)}")
            time.sleep(interval)

    def wait_log_line(self, bid: int, pattern: str, timeout: float = BATCH_TIMEOUT) -> str:
        """Waits until a line of the batch's log matches pattern (regex, searched)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log(bid):
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} in batch {bid}'s log after "
                                     f"{timeout}s{self.diagnose(bid)}")
            time.sleep(0.25)

    # -- what a client cannot see
    def row(self, bid: int) -> dict:
        rows = self.db.psql("SELECT state, pid, exit_status, supervisor_id, deleted, stop_requested, "
                            f"ended_at IS NOT NULL FROM batches WHERE id = {int(bid)}", db=self.dbname)
        assert rows, f"batch {bid} has no row"
        state, pid, exit_status, sv, deleted, stop, ended = rows[0]
        return {"state": state, "pid": int(pid) if pid else None,
                "exit_status": int(exit_status) if exit_status is not None else None,
                "supervisor_id": int(sv) if sv else None, "deleted": deleted == "t",
                "stop_requested": stop == "t", "ended": ended == "t"}

    def db_log(self, bid: int) -> list[str]:
        return [r[0] for r in self.db.psql(f"SELECT line FROM batch_log WHERE batch_id = {int(bid)} "
                                           "ORDER BY seq", db=self.dbname)]


def batch_module_server(work_dir: Path, pg: PgCluster, dbname: str, files_dir: Path,
                        supervisor: str = "managed", supervisor_conf: dict | None = None):
    """The body of a module-scoped fixture (`yield from h.batch_module_server(...)`): a server
    (event MPM) with its supervisor ("managed", or "external": started here, for tests that kill
    and restart it) on a database of its own, whose LivyBatchAllowedPaths is files_dir; yields a
    BatchClient. After the last test, batch processes still running from files_dir are a leak
    (every batch should have ended), and the server is stopped and checked as module_server does."""
    import pytest

    pg.create_database(dbname)
    factory = ServerFactory(work_dir, pg, dbname)
    try:
        server = factory(mpm="event", supervisor=supervisor, dbname=dbname,
                         extra_conf=f'LivyBatchAllowedPaths "{files_dir}"\n',
                         supervisor_conf=supervisor_conf)
        if supervisor == "external":
            server.start_external_supervisor()
    except HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    yield BatchClient(server, pg, dbname)
    left = batch_processes(files_dir)
    problems = ["batch processes still running after the last test: " +
                "; ".join(f"{p} {process_cmdline(p)[:150]}" for p in left)] if left else []
    terminate(left)
    problems += factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
