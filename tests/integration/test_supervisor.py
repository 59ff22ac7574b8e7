"""livy-supervisor against a real PostgreSQL and real Spark (the REPL driver), without httpd.

The tests write rows the way mod_livy does (a `sessions` row in `not_started`, statements numbered
from `sessions.next_statement_id`, cancel and stop requests), each in one transaction with the
NOTIFY the module sends, and watch the supervisor move the rows along. The file runs its own
throwaway PostgreSQL cluster and its own supervisor processes.
"""

from __future__ import annotations

import json
import os
import re
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import livy_harness as h

ROOT = Path(__file__).resolve().parents[2]
SUPERVISOR = Path(os.environ.get("LIVY_SUPERVISOR_BIN", ROOT / "supervisor" / "livy-supervisor"))
SQL_DIR = ROOT / "sql"
REPL_DRIVER = ROOT / "repl" / "livy_repl.py"
PYTHON = ROOT / ".venv" / "bin" / "python"

SPARK_START_TIMEOUT = 240  # a cold Spark on two busy cores


# ------------------------------------------------------------------ PostgreSQL


class Postgres(h.PgCluster):
    """The harness's throwaway cluster (password authentication, runtime role `livy`, owner
    role for migrations), with the few helpers these tests add."""

    def __init__(self, tmp_base: Path):
        super().__init__(tmp_base, "pg")

    def restart_later(self, down_for: float) -> None:
        """Stops the server (closing every connection), waits, starts it on the same port."""
        self.stop("fast")
        time.sleep(down_for)
        self.start()

    def value(self, sql: str):
        rows = self.psql(sql)
        return rows[0][0] if rows else None


# ------------------------------------------------------------------ the supervisor


class Supervisor:
    """One livy-supervisor in the foreground, logging to a file."""

    def __init__(self, tmp_base: Path, cluster: Postgres, **settings):
        self.tmp_base = tmp_base
        self.run_dir = tmp_base / "run"
        self.conf = tmp_base / "livy-supervisor.conf"
        self.log = tmp_base / "supervisor.log"
        self.proc: subprocess.Popen | None = None
        self.cluster = cluster
        values = {
            "database": cluster.conninfo(),
            "run_dir": self.run_dir,
            "sql_dir": SQL_DIR,
            "python": PYTHON,
            "repl_driver": REPL_DRIVER,
            "spark_master": "local[1]",
            "host_id": f"test-host-{tmp_base.name}",
            "max_sessions": 4,
            "heartbeat_interval": "1s",
            "supervisor_dead_after": "6s",
            "check_interval": "200ms",
            "stop_grace": "6s",
            "list_ended": "1h",
            "idle_timeout": "1h",
        }
        if os.geteuid() == 0:
            # Started as root, as by systemd: it drops to httpd's User and runs REPLs as the
            # REPL account, each in namespaces of its own.
            values.update(user=os.environ.get("LIVY_HTTPD_USER", "www-data"),
                          repl_user=os.environ.get("LIVY_REPL_USER", "livy-repl"))
        else:
            values["repl_isolation"] = "off"
        values.update(settings)
        self.conf.write_text("# written by tests/integration/test_supervisor.py\n"
                             + "".join(f"{k} = {v}\n" for k, v in values.items()))

    def migrate(self) -> str:
        # As the owner role: the runtime role of the `database` line may not create tables.
        r = subprocess.run([str(SUPERVISOR), "--config", str(self.conf), "--migrate",
                            "--database", self.cluster.conninfo(user=h.OWNER_ROLE)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def start(self) -> "Supervisor":
        self.log_file = open(self.log, "a")
        self.proc = subprocess.Popen([str(SUPERVISOR), "--config", str(self.conf), "--foreground"],
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        wait_for(lambda: "registered as supervisor" in self.log_text() or self.proc.poll() is not None,
                 30, "the supervisor to register")
        assert self.proc.poll() is None, f"the supervisor exited:\n{self.log_text()}"
        return self

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        rc = self.proc.wait(timeout)
        self.log_file.close()
        return rc

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""


# ------------------------------------------------------------------ helpers


wait_for = h.wait_for


def process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def processes_in_session(sid: int) -> list[int]:
    """Live processes whose session id is sid (the REPL, its JVM, Python workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] not in "ZX":
            found.append(int(entry.name))
    return found


def kill_session_processes(sid: int) -> None:
    for pid in processes_in_session(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Livy:
    """Writes rows the way mod_livy does and reads the supervisor's answers."""

    def __init__(self, cluster: Postgres):
        self.cluster = cluster

    def create_session(self, **columns) -> int:
        columns.setdefault("kind", "shared")
        names = ", ".join(columns)
        values = ", ".join(self.literal(v) for v in columns.values())
        return int(self.cluster.value(
            f"WITH s AS (INSERT INTO sessions ({names}) VALUES ({values}) RETURNING id) "
            "SELECT id, pg_notify('livy_sessions', id::text) FROM s"))

    @staticmethod
    def literal(v) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, (dict, list)):
            v = json.dumps(v)
        return "'" + str(v).replace("'", "''") + "'"

    def submit(self, session: int, code: str, kind: str | None = "pyspark") -> int:
        # One statement, so one transaction: the NOTIFY goes out when the rows are visible.
        return int(self.cluster.value(
            f"WITH s AS (UPDATE sessions SET next_statement_id = next_statement_id + 1, "
            f"last_activity_at = now() WHERE id = {session} "
            f"RETURNING next_statement_id - 1 AS sid), "
            f"i AS (INSERT INTO statements (session_id, id, code, kind) "
            f"SELECT {session}, sid, {self.literal(code)}, {self.literal(kind)} FROM s "
            f"RETURNING id) "
            f"SELECT id, pg_notify('livy_statements', '{session}') FROM i"))

    def cancel(self, session: int, statement: int) -> None:
        # As the module does: a waiting statement is cancelled at once, a running one is asked to.
        self.cluster.psql(
            "WITH c AS (UPDATE statements SET cancel_requested = true, "
            "state = CASE WHEN state = 'waiting' THEN 'cancelled' ELSE state END, "
            "progress = CASE WHEN state = 'waiting' THEN 1 ELSE progress END, "
            "completed = CASE WHEN state = 'waiting' "
            "THEN (extract(epoch FROM now()) * 1000)::bigint ELSE completed END "
            f"WHERE session_id = {session} AND id = {statement} RETURNING session_id) "
            "SELECT pg_notify('livy_statements', session_id::text) FROM c")

    def stop(self, session: int, how: str = "stop") -> None:
        deleted = ", deleted = true" if how == "delete" else ""
        self.cluster.psql(
            f"WITH u AS (UPDATE sessions SET stop_requested = '{how}'{deleted} "
            f"WHERE id = {session} RETURNING id) "
            "SELECT pg_notify('livy_sessions', id::text) FROM u")

    def session(self, session: int) -> dict:
        rows = self.cluster.psql(
            "SELECT state, app_id, spark_ui_url, repl_pid, repl_socket, ended_at IS NOT NULL, "
            f"deleted, supervisor_id FROM sessions WHERE id = {session}")
        state, app_id, ui, pid, sock, ended, deleted, sup = rows[0]
        return {"state": state, "app_id": app_id, "spark_ui_url": ui,
                "repl_pid": int(pid) if pid else None, "repl_socket": sock,
                "ended": ended == "t", "deleted": deleted == "t",
                "supervisor_id": int(sup) if sup else None}

    def state(self, session: int) -> str:
        return self.cluster.value(f"SELECT state FROM sessions WHERE id = {session}")

    def statement(self, session: int, statement: int) -> dict:
        rows = self.cluster.psql(
            "SELECT state, output::text, progress, started, completed FROM statements "
            f"WHERE session_id = {session} AND id = {statement}")
        state, output, progress, started, completed = rows[0]
        return {"state": state, "output": json.loads(output) if output else None,
                "progress": float(progress), "started": int(started),
                "completed": int(completed)}

    def log(self, session: int) -> list[str]:
        return [r[0] for r in self.cluster.psql(
            f"SELECT line FROM session_log WHERE session_id = {session} ORDER BY seq")]

    def wait_state(self, session: int, states, timeout: float = SPARK_START_TIMEOUT) -> str:
        states = {states} if isinstance(states, str) else set(states)
        try:
            return wait_for(lambda: (s := self.state(session)) in states and s, timeout,
                            f"session {session} to become {' or '.join(sorted(states))}")
        except AssertionError as e:
            tail = "\n".join(self.log(session)[-30:])
            raise AssertionError(f"{e}; it is {self.state(session)}; its log:\n{tail}") from None

    def wait_statement(self, session: int, statement: int, states=("available",),
                       timeout: float = 60) -> dict:
        wait_for(lambda: self.statement(session, statement)["state"] in states, timeout,
                 f"statement {session}/{statement} to become {'/'.join(states)}")
        return self.statement(session, statement)

    def run(self, session: int, code: str, timeout: float = 60) -> dict:
        return self.wait_statement(session, self.submit(session, code), timeout=timeout)

    # ---- batches, as the module writes them

    def create_batch(self, **columns) -> int:
        names = ", ".join(columns)
        values = ", ".join(self.literal(v) for v in columns.values())
        return int(self.cluster.value(
            f"WITH b AS (INSERT INTO batches ({names}) VALUES ({values}) RETURNING id) "
            "SELECT id, pg_notify('livy_batches', id::text) FROM b"))

    def batch(self, batch: int) -> dict:
        rows = self.cluster.psql(
            "SELECT state, pid, exit_status, ended_at IS NOT NULL, deleted, supervisor_id, "
            f"log_offset FROM batches WHERE id = {batch}")
        if not rows:
            return {}
        state, pid, status, ended, deleted, sup, offset = rows[0]
        return {"state": state, "pid": int(pid) if pid else None,
                "exit_status": int(status) if status else None, "ended": ended == "t",
                "deleted": deleted == "t", "supervisor_id": int(sup) if sup else None,
                "log_offset": int(offset)}

    def batch_log(self, batch: int) -> list[str]:
        return [r[0] for r in self.cluster.psql(
            f"SELECT line FROM batch_log WHERE batch_id = {batch} ORDER BY seq")]

    def wait_batch(self, batch: int, states, timeout: float = 120) -> dict:
        states = {states} if isinstance(states, str) else set(states)
        try:
            wait_for(lambda: self.batch(batch).get("state") in states, timeout,
                     f"batch {batch} to become {' or '.join(sorted(states))}")
        except AssertionError as e:
            tail = "\n".join(self.batch_log(batch)[-30:])
            raise AssertionError(f"{e}; it is {self.batch(batch)}; its log:\n{tail}") from None
        return self.batch(batch)


def text_of(statement: dict) -> str:
    out = statement["output"]
    assert out and out["status"] == "ok", out
    return out["data"]["text/plain"]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tmp_base():
    d = Path(tempfile.mkdtemp(prefix="livy-sv-"))
    d.chmod(0o755)
    yield d
    if not os.environ.get("LIVY_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_base):
    assert SUPERVISOR.exists(), f"not built: {SUPERVISOR} (run make)"
    cluster = Postgres(tmp_base)
    try:
        cluster.setup(migrate=False)
    except h.HarnessError as e:
        cluster.destroy()
        pytest.fail(str(e), pytrace=False)
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def supervisor(tmp_base, cluster):
    """The supervisor most tests share; tests that restart it leave one running."""
    (tmp_base / "main").mkdir()
    sv = Supervisor(tmp_base / "main", cluster)
    assert "schema version" in sv.migrate()
    holder = {"sv": sv.start()}
    yield holder
    holder["sv"].stop()
    # Whatever a test left running goes now: REPLs outlive supervisors by design.
    for line in cluster.psql("SELECT repl_pid FROM sessions WHERE repl_pid IS NOT NULL"):
        kill_session_processes(int(line[0]))


@pytest.fixture(scope="module")
def livy(cluster, supervisor) -> Livy:
    return Livy(cluster)


@pytest.fixture(scope="module")
def shared_session(livy) -> int:
    """One Spark session several tests use, in order: started, run, cancelled, recovered."""
    sid = livy.create_session(name="shared-session")
    livy.wait_state(sid, "idle")
    return sid


# ------------------------------------------------------------------ without Spark


def test_config_unknown_key_is_an_error_naming_it(tmp_base):
    conf = tmp_base / "bad.conf"
    conf.write_text("# comment\nrun_dir = /tmp/x\n\ndatabse = host=nowhere\n")
    r = subprocess.run([str(SUPERVISOR), "--config", str(conf), "--foreground"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert 'bad.conf:4: unknown key "databse"' in r.stderr


def test_config_bad_duration_is_an_error(tmp_base):
    conf = tmp_base / "bad-duration.conf"
    conf.write_text("database = host=nowhere\nrun_dir = /tmp/x\nidle_timeout = 10 minutes\n")
    r = subprocess.run([str(SUPERVISOR), "--config", str(conf), "--foreground"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "bad-duration.conf:3: idle_timeout" in r.stderr and "duration" in r.stderr


@pytest.mark.parametrize("settings, says", [
    ("repl_user_from = owner\nwarm_sessions = 1\n",
     "warm_sessions needs every REPL to run as one account"),
    ("repl_user = nobody\nmax_sessions = 2\nwarm_sessions = 3\n",
     "warm_sessions (3) is more than max_sessions (2)"),
    ("repl_user = nobody\nwarm_sessions = -1\n", "warm_sessions: \"-1\" is not a non-negative integer"),
], ids=["per-user-accounts", "over-capacity", "negative"])
def test_config_warm_sessions_it_cannot_keep_is_an_error(tmp_base, settings, says):
    conf = tmp_base / "bad-warm.conf"
    conf.write_text("database = host=nowhere\nrun_dir = /tmp/x\n" + settings)
    r = subprocess.run([str(SUPERVISOR), "--config", str(conf), "--foreground"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert says in r.stderr, r.stderr


def test_refuses_an_unmigrated_database_naming_migrate(tmp_base, cluster):
    database = cluster.create_database("empty", migrate=False)
    d = tmp_base / "unmigrated"
    d.mkdir()
    sv = Supervisor(d, cluster, database=database)
    r = subprocess.run([str(SUPERVISOR), "--config", str(sv.conf), "--foreground"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "schema is at version 0" in r.stderr and "livy-supervisor --migrate" in r.stderr


def test_refuses_a_python_without_pyspark_naming_the_setting(tmp_base, cluster):
    d = tmp_base / "nopyspark"
    d.mkdir()
    sv = Supervisor(d, cluster, python="/usr/bin/python3")
    r = subprocess.run([str(SUPERVISOR), "--config", str(sv.conf), "--foreground"],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 1, r.stderr
    assert "python = /usr/bin/python3 cannot import pyspark" in r.stderr, r.stderr
    assert "ModuleNotFoundError" in r.stderr and "pip install pyspark" in r.stderr, r.stderr
    if os.geteuid() == 0:  # checked as the account the REPLs run as
        repl_user = os.environ.get("LIVY_REPL_USER", "livy-repl")
        assert f"cannot import pyspark as {repl_user} (exited with status 1" in r.stderr, r.stderr


def test_migrate_is_idempotent_and_prints_the_version(supervisor):
    assert supervisor["sv"].migrate().strip() == "schema version 6"


def test_registers_and_heartbeats(cluster, supervisor):
    sv = supervisor["sv"]
    row = cluster.psql(f"SELECT id, host, capacity, stopped_at FROM supervisors "
                  f"WHERE pid = {sv.proc.pid}")
    assert len(row) == 1
    sid, host, capacity, stopped = row[0]
    assert host.startswith("test-host-") and capacity == "4" and stopped is None
    first = cluster.value(f"SELECT heartbeat_at FROM supervisors WHERE id = {sid}")
    wait_for(lambda: cluster.value(f"SELECT heartbeat_at FROM supervisors WHERE id = {sid}") != first,
             10, "a second heartbeat")


def test_sigterm_exits_cleanly_and_marks_the_row_stopped(tmp_base, cluster):
    d = tmp_base / "sigterm"
    d.mkdir()
    sv = Supervisor(d, cluster).start()
    sv.signal(signal.SIGTERM)
    assert sv.wait() == 0
    assert cluster.value(f"SELECT stopped_at IS NOT NULL FROM supervisors WHERE pid = {sv.proc.pid}") == "t"
    assert "SIGTERM" in sv.log_text()


def test_daemon_mode_writes_a_pid_file_and_stops_on_sigterm(tmp_base, cluster):
    d = tmp_base / "daemon"
    d.mkdir()
    sv = Supervisor(d, cluster)
    # The daemon keeps stderr (its log): give it a file, not a pipe run() would wait on.
    with open(sv.log, "w") as log:
        r = subprocess.run([str(SUPERVISOR), "--config", str(sv.conf)], stdout=log, stderr=log,
                           timeout=30)
    assert r.returncode == 0, sv.log_text()
    pid_file = sv.run_dir / "livy-supervisor.pid"
    pid = int(pid_file.read_text())
    assert process_alive(pid)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not process_alive(pid), 20, "the daemon to exit")
    assert not pid_file.exists()
    assert cluster.value(f"SELECT stopped_at IS NOT NULL FROM supervisors WHERE pid = {pid}") == "t"


def test_sessions_of_a_silent_supervisor_are_declared_dead(cluster, livy):
    # A supervisor on another host that stopped heartbeating a minute ago, with a live session.
    cluster.psql("INSERT INTO supervisors (host, pid, capacity, heartbeat_at) "
            "VALUES ('gone-host', 999999, 1, now() - interval '1 minute')")
    gone = cluster.value("SELECT max(id) FROM supervisors")
    sid = livy.create_session(state="idle", supervisor_id=int(gone))
    livy.wait_state(sid, "dead", timeout=15)
    assert any("stopped heartbeating" in line and "gone-host" in line for line in livy.log(sid))
    assert cluster.value(f"SELECT stopped_at IS NOT NULL FROM supervisors WHERE id = {gone}") == "t"


# ------------------------------------------------------------------ with Spark


def test_session_is_claimed_and_becomes_idle_with_an_app_id(livy, shared_session):
    s = livy.session(shared_session)
    assert s["state"] == "idle"
    assert s["app_id"] and s["app_id"].startswith("local-")
    assert s["repl_pid"] and process_alive(s["repl_pid"])
    assert s["repl_socket"].endswith(f"/sessions/session-{shared_session}/repl.sock")
    if os.geteuid() == 0:  # the REPL runs as the REPL account, never as the supervisor
        uid = Path(f"/proc/{s['repl_pid']}").stat().st_uid
        assert pwd.getpwuid(uid).pw_name == os.environ.get("LIVY_REPL_USER", "livy-repl")
    log = livy.log(shared_session)
    assert any("starting the REPL" in line for line in log)
    run_dir = Path(s["repl_socket"]).parents[2]
    conf_file = run_dir / f"session-{shared_session}.conf.json"
    assert conf_file.stat().st_mode & 0o077 == 0  # the supervisor's alone: the REPL gets an fd
    conf = json.loads(conf_file.read_text())
    assert conf["spark"]["spark.master"] == "local[1]"
    assert conf["spark"]["spark.app.name"] == "shared-session"
    # when it first became idle, for the start-duration metric
    took = float(livy.cluster.value("SELECT extract(epoch FROM ready_at - created_at) "
                                    f"FROM sessions WHERE id = {shared_session}"))
    assert 0 < took < SPARK_START_TIMEOUT


def test_statement_one_plus_one(livy, shared_session):
    st = livy.run(shared_session, "1 + 1")
    assert st["output"] == {"status": "ok", "execution_count": st["output"]["execution_count"],
                            "data": {"text/plain": "2"}}
    assert st["progress"] == 1.0 and st["started"] > 0 and st["completed"] >= st["started"]
    wait_for(lambda: livy.state(shared_session) == "idle", 10, "the session to be idle again")


def test_statements_run_in_id_order(livy, shared_session):
    ids = [livy.submit(shared_session, code) for code in
           ("order = []", "order.append(1)", "order.append(2)", "order.append(3)", "order")]
    assert ids == sorted(ids)
    last = livy.wait_statement(shared_session, ids[-1])
    assert text_of(last) == "[1, 2, 3]"
    starts = [livy.statement(shared_session, i)["started"] for i in ids]
    assert starts == sorted(starts)


def test_cancel_a_running_loop(livy, shared_session):
    sid = livy.submit(shared_session, "while True: pass")
    livy.wait_statement(shared_session, sid, ("running",), timeout=30)
    assert livy.state(shared_session) == "busy"
    livy.cancel(shared_session, sid)
    st = livy.wait_statement(shared_session, sid, ("cancelled",), timeout=30)
    assert st["progress"] == 1.0
    livy.wait_state(shared_session, "idle", timeout=15)
    assert text_of(livy.run(shared_session, "len(order)")) == "3"  # globals survive a cancel


def test_database_restart_is_survived(cluster, livy, supervisor, shared_session):
    livy.run(shared_session, "before_restart = 7")
    cluster.restart_later(down_for=2)
    # The supervisor reconnects by itself (backoff from 0.5 s); the REPL kept its globals.
    st = livy.run(shared_session, "before_restart * 6", timeout=60)
    assert text_of(st) == "42"
    assert supervisor["sv"].proc.poll() is None
    log = supervisor["sv"].log_text()
    assert "lost the database connection" in log and "reconnected to the database" in log


def test_lines_and_results_sent_during_a_database_outage_are_kept(cluster, livy, supervisor,
                                                                  shared_session):
    """What the REPL sends while the database is away waits in the socket; after the reconnect
    the supervisor reads it on the same connection (and says hello again for the results): no
    log line is lost, the result is stored once."""
    sid = livy.submit(shared_session,
                      "import time\n"
                      "time.sleep(2)\n"
                      "spark._jvm.java.lang.System.err.println('jvm-line-during-the-outage')\n"
                      "spark._jvm.java.lang.System.err.flush()\n"
                      "time.sleep(1)\n"
                      "'done during the outage'")
    wait_for(lambda: livy.statement(shared_session, sid)["state"] == "running", 30,
             "the statement to start")
    cluster.restart_later(down_for=6)
    st = livy.wait_statement(shared_session, sid, timeout=60)
    assert text_of(st) == "'done during the outage'"
    wait_for(lambda: any("jvm-line-during-the-outage" in line for line in livy.log(shared_session)),
             20, "the JVM's line to reach the session log")
    assert sum("jvm-line-during-the-outage" in line for line in livy.log(shared_session)) == 1
    assert supervisor["sv"].proc.poll() is None


def test_a_stalled_database_is_abandoned_after_the_query_bound(cluster, livy, supervisor,
                                                                shared_session):
    """A server that stops answering (its backend frozen with SIGSTOP, as a hung host or a
    network partition would look) is abandoned after the query bound: max(3 s,
    min(db_statement_timeout + 2 s, supervisor_dead_after / 3)) = 3 s in this configuration. The
    loop, never blocked on it, reconnects and carries on; a statement submitted during the stall
    completes; nothing dies."""
    sv = supervisor["sv"]
    before = sv.log_text()
    backends = [int(r[0]) for r in cluster.psql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'livy-supervisor'")]
    assert backends, "no supervisor connection in pg_stat_activity"
    for pid in backends:
        os.kill(pid, signal.SIGSTOP)
    try:
        sid = livy.submit(shared_session, "'answered after the stall'")
        wait_for(lambda: "no answer within 3000 ms" in sv.log_text()[len(before):], 20,
                 "the supervisor to abandon the stalled connection")
        wait_for(lambda: "reconnected to the database" in sv.log_text()[len(before):], 20,
                 "the supervisor to reconnect")
    finally:
        for pid in backends:
            os.kill(pid, signal.SIGCONT)
    st = livy.wait_statement(shared_session, sid, timeout=60)
    assert text_of(st) == "'answered after the stall'"
    assert livy.state(shared_session) == "idle"
    log = sv.log_text()[len(before):]
    assert "presumed" not in log and "unresponsive" not in log
    assert sv.proc.poll() is None


def test_the_server_cancels_a_blocked_query_before_the_supervisor_gives_up(cluster, livy,
                                                                            supervisor,
                                                                            shared_session):
    """statement_timeout is sent a second below the query bound (2 s here): a query stuck
    behind a lock is cancelled by the server, which answers, and the connection is kept."""
    sv = supervisor["sv"]
    sv_id = int(cluster.value(f"SELECT max(id) FROM supervisors WHERE pid = {sv.proc.pid}"))
    assert cluster.value("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'") == "0"
    before = sv.log_text()
    locker = subprocess.Popen(
        [str(h.pg_bin() / "psql"), "-X", "-q", "-d", cluster.conninfo(user="postgres"), "-c",
         f"BEGIN; SELECT 1 FROM supervisors WHERE id = {sv_id} FOR UPDATE; SELECT pg_sleep(5); COMMIT;"],
        env=cluster.psql_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "canceling statement due to statement timeout" in sv.log_text()[len(before):],
                 15, "the server to cancel the blocked heartbeat")
    finally:
        assert locker.wait(30) == 0, locker.stderr.read()
    st = livy.run(shared_session, "'after the lock'", timeout=60)
    assert text_of(st) == "'after the lock'"
    log = sv.log_text()[len(before):]
    assert "lost the database connection" not in log, log
    assert sv.proc.poll() is None


def test_supervisor_killed_during_a_statement_loses_nothing(tmp_base, cluster, livy, supervisor,
                                                            shared_session):
    livy.run(shared_session, "kept = 'still here'")
    sid = livy.submit(shared_session, "import time; time.sleep(8); 42")
    livy.wait_statement(shared_session, sid, ("running",), timeout=30)
    old = supervisor["sv"]
    old.signal(signal.SIGKILL)
    old.wait()
    repl_pid = livy.session(shared_session)["repl_pid"]
    assert process_alive(repl_pid), "the REPL must outlive its supervisor"
    queued = livy.submit(shared_session, "kept")  # posted while no supervisor runs
    new = Supervisor(old.tmp_base, cluster)  # same config, same host identity
    supervisor["sv"] = new.start()
    assert text_of(livy.wait_statement(shared_session, sid, timeout=60)) == "42"
    assert text_of(livy.wait_statement(shared_session, queued, timeout=30)) == "'still here'"
    s = livy.session(shared_session)
    assert s["repl_pid"] == repl_pid
    assert s["supervisor_id"] == int(cluster.value(
        f"SELECT id FROM supervisors WHERE pid = {new.proc.pid}"))
    livy.wait_state(shared_session, "idle", timeout=15)
    assert "reattaching to its REPL" in new.log_text()


def test_stop_ends_the_session_and_its_processes(livy, shared_session):
    repl_pid = livy.session(shared_session)["repl_pid"]
    assert processes_in_session(repl_pid)
    livy.stop(shared_session)
    livy.wait_state(shared_session, "dead", timeout=30)
    s = livy.session(shared_session)
    assert s["ended"] and s["repl_pid"] is None
    wait_for(lambda: not processes_in_session(repl_pid), 15, "the REPL's processes to exit")
    assert any("stopped by a client request" in line for line in livy.log(shared_session))


STATE_LOG = """
CREATE TABLE IF NOT EXISTS test_state_log (seq bigserial, session_id bigint, state text);
CREATE OR REPLACE FUNCTION test_log_state() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO test_state_log (session_id, state) VALUES (NEW.id, NEW.state);
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS test_state_log ON sessions;
CREATE TRIGGER test_state_log AFTER UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION test_log_state();
"""


def test_child_killed_with_sigkill_makes_the_session_dead(livy):
    # Every state the supervisor writes is recorded (a trigger of the test's own, as superuser),
    # so a state a polling client could glimpse in passing cannot hide.
    livy.cluster.psql(STATE_LOG)
    try:
        sid = livy.create_session()
        livy.wait_state(sid, "idle")
        running = livy.submit(sid, "import time\ntime.sleep(120)")
        livy.wait_statement(sid, running, ("running",), timeout=30)
        waiting = livy.submit(sid, "'never runs'")
        pid = livy.session(sid)["repl_pid"]
        os.kill(pid, signal.SIGKILL)
        livy.wait_state(sid, "dead", timeout=15)
        assert livy.session(sid)["ended"]
        assert any("killed by signal 9" in line for line in livy.log(sid)), livy.log(sid)[-5:]
        wait_for(lambda: not processes_in_session(pid), 15, "the JVM to go with its REPL")
        # The terminal state is written once: idle/busy straight to dead, never error first.
        states = [r[0] for r in livy.cluster.psql(
            f"SELECT state FROM test_state_log WHERE session_id = {sid} ORDER BY seq")]
        assert states[-1] == "dead" and "error" not in states, states
        # Its statements end with an error output saying why, in Livy's key order.
        for st_id in (running, waiting):
            st = livy.statement(sid, st_id)
            assert st["state"] == "available" and st["progress"] == 1.0, st
            assert list(st["output"]) == ["status", "execution_count", "ename", "evalue",
                                          "traceback"], st
            assert st["output"]["status"] == "error" and st["output"]["ename"] == "SessionDead"
            assert st["output"]["execution_count"] == st_id
            assert "killed by signal 9" in st["output"]["evalue"], st
    finally:
        livy.cluster.psql("DROP TRIGGER IF EXISTS test_state_log ON sessions")


def test_bad_driver_memory_ends_dead_with_sparks_error(livy):
    sid = livy.create_session(driver_memory="abc")
    livy.wait_state(sid, "dead", timeout=SPARK_START_TIMEOUT)
    log = "\n".join(livy.log(sid))
    assert "Invalid maximum heap size: -Xmxabc" in log, log[-3000:]
    assert "livy-supervisor: the REPL failed" in log and "exited with status" in log, log[-3000:]


def test_idle_timeout_stops_an_idle_session(livy):
    sid = livy.create_session(idle_timeout="3s", idle_timeout_ms=3000)
    livy.wait_state(sid, "idle")
    pid = livy.session(sid)["repl_pid"]
    livy.wait_state(sid, "dead", timeout=30)
    assert any("idle for more than 3s" in line for line in livy.log(sid)), livy.log(sid)[-5:]
    wait_for(lambda: not processes_in_session(pid), 15, "the REPL's processes to exit")


def test_ended_sessions_leave_the_list_after_the_retain_period(cluster, livy, supervisor):
    # An ended session from long ago, as the module would list it: it must vanish.
    sid = livy.create_session(state="dead")
    cluster.psql(f"UPDATE sessions SET ended_at = now() - interval '2 hours' WHERE id = {sid}")
    wait_for(lambda: livy.session(sid)["deleted"], 10, "the old session to leave the list")


def test_ended_sessions_are_purged_after_retain_ended(tmp_base, cluster, livy):
    """retain_ended after a session ended, its row, statements and log lines are deleted, with
    stopped supervisors rows no session names; recent sessions stay, and so does an ended one
    whose REPL process may still run (repl_pid set) while its supervisor has not stopped (or
    stopped less than retain_ended ago); one whose supervisor stopped longer ago than that (a
    host that never came back) goes. Two supervisors run: one purges at a time (an advisory lock), and neither
    fails."""
    sups = []
    for name in ("purge-a", "purge-b"):
        (tmp_base / name).mkdir()
        sups.append(Supervisor(tmp_base / name, cluster, list_ended="1s", retain_ended="4s",
                               max_sessions=0).start())
    try:
        cluster.psql("INSERT INTO supervisors (host, pid, capacity, heartbeat_at, stopped_at) "
                     "VALUES ('long-gone', 999998, 1, now() - interval '1 day', now() - interval '1 day')")
        gone_sv = int(cluster.value("SELECT max(id) FROM supervisors"))
        cluster.psql("INSERT INTO supervisors (host, pid, capacity, heartbeat_at) "
                     "VALUES ('still-here', 999995, 1, now())")
        recent_sv = int(cluster.value("SELECT max(id) FROM supervisors"))
        # Ended from the start (an unended session of a silent supervisor would be reaped).
        hour_ago = "now() - interval '1 hour'"
        long_ago = str(cluster.value(f"SELECT {hour_ago}"))
        abandoned = livy.create_session(state="dead", supervisor_id=gone_sv, repl_pid=999994,
                                        ended_at=long_ago)
        old = [livy.create_session(state="dead", deleted=True, ended_at=long_ago)
               for _ in range(3)] + [abandoned]
        recent = livy.create_session(state="dead")
        live = livy.create_session(state="dead", supervisor_id=recent_sv, repl_pid=999996,
                                   ended_at=long_ago)
        cluster.psql(f"UPDATE sessions SET ended_at = now() WHERE id = {recent}")
        for sid in old + [recent, live]:
            for i in range(3):
                livy.submit(sid, f"x = {i}")
            cluster.psql(f"INSERT INTO session_log (session_id, seq, line) "
                         f"SELECT {sid}, g, 'line ' || g FROM generate_series(0, 4) g")
        ids = ",".join(map(str, old))
        wait_for(lambda: cluster.value(f"SELECT count(*) FROM sessions WHERE id IN ({ids})") == "0",
                 20, "the old sessions to be purged")
        assert cluster.value(f"SELECT count(*) FROM statements WHERE session_id IN ({ids})") == "0"
        assert cluster.value(f"SELECT count(*) FROM session_log WHERE session_id IN ({ids})") == "0"
        # The recent one is still there (it ended less than retain_ended ago), the lingering
        # one too.
        assert cluster.value(f"SELECT count(*) FROM sessions WHERE id IN ({recent}, {live})") == "2"
        assert cluster.value(f"SELECT count(*) FROM statements WHERE session_id = {live}") == "3"
        # ... until its time comes.
        wait_for(lambda: cluster.value(f"SELECT count(*) FROM sessions WHERE id = {recent}") == "0",
                 20, "the recent session to be purged in its turn")
        assert cluster.value(f"SELECT count(*) FROM sessions WHERE id = {live}") == "1"
        # The stopped supervisors rows go once no session names them.
        wait_for(lambda: cluster.value(f"SELECT count(*) FROM supervisors WHERE id = {gone_sv}") == "0",
                 20, "the long-stopped supervisors row to be purged")
        assert cluster.value(f"SELECT count(*) FROM supervisors WHERE id = {recent_sv}") == "1"
        cluster.psql(f"DELETE FROM sessions WHERE id = {live}; "
                     f"DELETE FROM supervisors WHERE id = {recent_sv}")
        logs = "".join(sv.log_text() for sv in sups)
        # Earlier tests' ended sessions go too: the count is at least our five.
        counts = [int(n) for n in re.findall(r"purged (\d+) session\(s\) ended more than 4s ago", logs)]
        assert sum(counts) >= 5, logs
        for sv in sups:
            assert sv.proc.poll() is None
            assert "database:" not in sv.log_text(), sv.log_text()
    finally:
        for sv in sups:
            sv.stop()


def test_a_second_supervisor_on_the_same_run_dir_is_refused(tmp_base, cluster, supervisor):
    twin = Supervisor(supervisor["sv"].tmp_base, cluster, host_id="another-host-id")
    twin.conf = tmp_base / "twin.conf"
    twin.conf.write_text(supervisor["sv"].conf.read_text().replace(
        f"host_id = test-host-{supervisor['sv'].tmp_base.name}", "host_id = another-host-id"))
    r = subprocess.run([str(SUPERVISOR), "--config", str(twin.conf), "--foreground"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "another livy-supervisor runs with run_dir" in r.stdout + r.stderr, r.stdout + r.stderr
    assert supervisor["sv"].proc.poll() is None


def test_a_same_host_id_peer_is_taken_over_only_once_its_heartbeat_is_stale(tmp_base, cluster):
    """A fresh row with our host_id that is not this run_dir's previous supervisor (a twin on
    another machine, or one reconnecting after an outage) is waited for, not robbed; once its
    heartbeat is older than supervisor_dead_after (by the database's clock), it is taken over."""
    (tmp_base / "twin").mkdir()
    cluster.psql("INSERT INTO supervisors (host, pid, capacity, heartbeat_at) "
                 "VALUES ('twin-host', 999997, 1, now())")
    peer = int(cluster.value("SELECT max(id) FROM supervisors"))
    sv = Supervisor(tmp_base / "twin", cluster, host_id="twin-host", max_sessions=0)
    sv.log_file = open(sv.log, "a")
    sv.proc = subprocess.Popen([str(SUPERVISOR), "--config", str(sv.conf), "--foreground"],
                               stdout=sv.log_file, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "waiting until its heartbeat is older" in sv.log_text(), 15,
                 "the supervisor to wait for its twin")
        # The twin keeps heartbeating for 4 s: the newcomer keeps waiting.
        t_last = time.monotonic()
        while time.monotonic() - t_last < 4:
            cluster.psql(f"UPDATE supervisors SET heartbeat_at = now() WHERE id = {peer}")
            t_stop = time.monotonic()
            assert "registered as supervisor" not in sv.log_text()
            time.sleep(0.5)
        assert cluster.value(f"SELECT stopped_at IS NULL FROM supervisors WHERE id = {peer}") == "t"
        wait_for(lambda: "registered as supervisor" in sv.log_text(), 20,
                 "the supervisor to register once its twin's heartbeat is stale")
        waited = time.monotonic() - t_stop
        assert waited >= 5, f"registered {waited:.1f}s after the twin's last heartbeat (limit 6s)"
        assert cluster.value(f"SELECT stopped_at IS NOT NULL FROM supervisors WHERE id = {peer}") == "t"
        assert sv.proc.poll() is None
    finally:
        sv.stop()


# ------------------------------------------------------------------ batches


def test_batches_of_a_silent_supervisor_are_declared_dead(cluster, livy):
    cluster.psql("INSERT INTO supervisors (host, pid, capacity, heartbeat_at) "
                 "VALUES ('gone-batch-host', 999993, 1, now() - interval '1 minute')")
    gone = int(cluster.value("SELECT max(id) FROM supervisors"))
    bid = livy.create_batch(file="/nonexistent/job.py", state="running", supervisor_id=gone,
                            pid=999992)
    b = livy.wait_batch(bid, "dead", timeout=15)
    assert b["ended"]
    assert any("stopped heartbeating" in line and "gone-batch-host" in line
               for line in livy.batch_log(bid)), livy.batch_log(bid)
    assert cluster.value(f"SELECT stopped_at IS NOT NULL FROM supervisors WHERE id = {gone}") == "t"


def test_ended_batches_leave_the_list_then_are_purged(tmp_base, cluster, livy):
    """list_ended after a batch ended it leaves the list (deleted); retain_ended after, its row
    and log lines go, and a stopped supervisors row that only a batch named goes after it."""
    (tmp_base / "bpurge").mkdir()
    sv = Supervisor(tmp_base / "bpurge", cluster, list_ended="1s", retain_ended="4s",
                    max_sessions=0).start()
    try:
        cluster.psql("INSERT INTO supervisors (host, pid, capacity, heartbeat_at, stopped_at) "
                     "VALUES ('batch-long-gone', 999991, 1, now() - interval '1 day', "
                     "now() - interval '1 day')")
        gone_sv = int(cluster.value("SELECT max(id) FROM supervisors"))
        old = livy.create_batch(file="/x/old.py", state="success", supervisor_id=gone_sv,
                                ended_at=str(cluster.value("SELECT now() - interval '1 hour'")))
        recent = livy.create_batch(file="/x/recent.py", state="dead",
                                   ended_at=str(cluster.value("SELECT now()")))
        for bid in (old, recent):
            cluster.psql("INSERT INTO batch_log (batch_id, seq, line) "
                         f"SELECT {bid}, g, 'line ' || g FROM generate_series(0, 4) g")
        listed_before = int(cluster.value("SELECT listed FROM batch_count"))
        wait_for(lambda: livy.batch(recent).get("deleted"), 10, "the recent batch to leave the list")
        assert int(cluster.value("SELECT listed FROM batch_count")) <= listed_before - 1
        wait_for(lambda: not livy.batch(old), 20, "the old batch to be purged")
        assert cluster.value(f"SELECT count(*) FROM batch_log WHERE batch_id = {old}") == "0"
        assert livy.batch(recent), "the recent batch went before retain_ended"
        wait_for(lambda: not livy.batch(recent), 20, "the recent batch to be purged in its turn")
        wait_for(lambda: cluster.value(f"SELECT count(*) FROM supervisors WHERE id = {gone_sv}") == "0",
                 20, "the supervisors row only a batch named to be purged")
        assert re.search(r"purged \d+ session\(s\) .* [1-9]\d* batch\(es\) and their logs",
                         sv.log_text()), sv.log_text()
        assert "database:" not in sv.log_text(), sv.log_text()
    finally:
        sv.stop()


class Database:
    """One database of the cluster, for a test whose supervisor must be alone with its rows."""

    def __init__(self, cluster: Postgres, name: str):
        self.cluster, self.name = cluster, name
        self.conninfo = cluster.create_database(name)

    def psql(self, sql: str) -> list[tuple]:
        return self.cluster.psql(sql, db=self.name)

    def value(self, sql: str):
        rows = self.psql(sql)
        return rows[0][0] if rows else None


def test_a_batch_runs_its_output_is_its_log_and_it_counts_against_max_sessions(tmp_base, cluster):
    """With room for one, a running batch keeps a new session waiting until it ends; the batch's
    output is its log, its exit status recorded, its files removed."""
    d = tmp_base / "bcap"
    d.mkdir()
    job = d / "job.py"
    job.write_text("import sys, time\nprint('job starts', sys.argv[1:], flush=True)\n"
                   "time.sleep(8)\nprint('job ends', flush=True)\n")
    job.chmod(0o644)
    db = Database(cluster, "bcap")
    livy = Livy(db)
    sv = Supervisor(d, cluster, database=db.conninfo, max_sessions=1).start()
    try:
        bid = livy.create_batch(file=str(job), args=["one", "two"], owner="alice")
        livy.wait_batch(bid, "running", timeout=30)
        sid = livy.create_session(kind="pyspark")
        wait_for(lambda: any("job starts ['one', 'two']" in line for line in livy.batch_log(bid)),
                 60, "the job's first line in the log")
        run_dir = d / "run"
        assert (run_dir / f"batch-{bid}.out").exists()
        assert livy.state(sid) == "not_started", "claimed while the batch held the only room"
        b = livy.wait_batch(bid, "success", timeout=60)
        assert b["exit_status"] == 0 and b["pid"] is None and b["log_offset"] > 0
        log = livy.batch_log(bid)
        assert log.index("job ends") > log.index("job starts ['one', 'two']"), log
        assert log[-1] == "livy-supervisor: spark-submit exited with status 0; the batch succeeded"
        wait_for(lambda: not (run_dir / f"batch-{bid}.out").exists()
                 and not (run_dir / "sessions" / f"batch-{bid}").exists(), 10,
                 "the batch's files to be removed")
        # The room is free again: the session is claimed now.
        wait_for(lambda: livy.state(sid) != "not_started", 10, "the waiting session's claim")
        livy.stop(sid, "delete")
        livy.wait_state(sid, {"dead", "killed"}, timeout=60)
    finally:
        sv.stop()
        for line in db.psql("SELECT repl_pid FROM sessions WHERE repl_pid IS NOT NULL"):
            kill_session_processes(int(line[0]))
