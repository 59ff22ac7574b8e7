"""Recovery, through httpd: the supervisor killed with SIGKILL (managed: httpd starts it again;
standalone: the test does) and httpd's graceful restart lose no session, no global variable and no
statement result, because the REPL children outlive their supervisor.

One Spark session per server, shared by the tests of that server in file order; the standalone
server's session starts while the managed server's tests run.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server, start_server

SLOW_STATEMENT = "import time; time.sleep(8); 42"


def owner(c: Client, sid: int) -> tuple[int, int]:
    """(supervisors.id, pid) of the supervisor that holds session sid."""
    rows = c.db.psql(f"SELECT v.id, v.pid FROM sessions s JOIN supervisors v ON v.id = s.supervisor_id "
                     f"WHERE s.id = {int(sid)}", db=c.dbname)
    assert rows, f"session {sid} has no supervisor"
    return int(rows[0][0]), int(rows[0][1])


def live_supervisor(c: Client) -> tuple[int, int]:
    """(id, pid) of the running supervisor registered last, as seen in the supervisors table and
    checked against /proc."""
    rows = c.db.psql("SELECT id, pid FROM supervisors WHERE stopped_at IS NULL ORDER BY id DESC LIMIT 1",
                     db=c.dbname)
    assert rows, "no supervisor registered"
    sv_id, pid = int(rows[0][0]), int(rows[0][1])
    cmd = h.process_cmdline(pid)
    assert h.process_alive(pid) and "livy-supervisor" in cmd, (pid, cmd)
    assert str(c.server.supervisor_conf_path) in cmd, cmd
    return sv_id, pid


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert not h.wait_gone([pid], 10), f"pid {pid} survived SIGKILL"


def wait_new_supervisor(c: Client, old_pid: int, timeout: float = 40) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        rows = c.db.psql("SELECT id, pid FROM supervisors WHERE stopped_at IS NULL AND pid <> "
                         f"{int(old_pid)} ORDER BY id DESC LIMIT 1", db=c.dbname)
        if rows and h.process_alive(int(rows[0][1])):
            return int(rows[0][0]), int(rows[0][1])
        if time.monotonic() > deadline:
            raise AssertionError(f"no new supervisor registered within {timeout}s\n{c.server.log_tail(30)}")
        time.sleep(0.1)


def wait_with_states(c: Client, sid: int, stid: int, timeout: float = 90) -> tuple[dict, set]:
    """Waits for a statement to be available while watching the session's state too: through a
    supervisor's death the session must never look ended."""
    session_states = set()
    deadline = time.monotonic() + timeout
    while True:
        session_states.add(c.session(sid)["state"])
        st = c.statement(sid, stid)
        if st["state"] == "available":
            return st, session_states
        assert st["state"] in {"waiting", "running"}, st
        if time.monotonic() > deadline:
            raise AssertionError(f"statement {sid}/{stid} still {st['state']} after {timeout}s"
                                 f"{c.diagnose(sid)}")
        time.sleep(0.1)


def text_of(st: dict) -> str:
    assert st["output"]["status"] == "ok", st["output"]
    return st["output"]["data"]["text/plain"]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def managed(work_dir, pg, spark_env):
    factory, server = start_server(work_dir, pg, "recovery", "recovery", "event", {
        "check_interval": "200ms", "heartbeat_interval": "1s"})
    c = Client(server, pg, "recovery")
    sid = c.create(kind="pyspark", conf=FAST_CONF)["id"]
    c.wait_session(sid, "idle")
    assert text_of(c.run(sid, "g = 41")) == ""
    yield c, sid
    finish_server(factory)


@pytest.fixture(scope="module")
def standalone(work_dir, pg, spark_env):
    """A server whose supervisor the test runs (livy-supervisor --foreground); its session is
    created at once and starts in the background."""
    pg.create_database("recovery_ext")
    factory = h.ServerFactory(work_dir, pg, "recovery-ext")
    try:
        server = factory(mpm="event", supervisor="external", dbname="recovery_ext",
                         supervisor_conf={"check_interval": "200ms", "heartbeat_interval": "1s"})
        server.start_external_supervisor()
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    c = Client(server, pg, "recovery_ext")
    sid = c.create(kind="pyspark", conf=FAST_CONF)["id"]
    yield c, sid
    finish_server(factory)


# ------------------------------------------------------------------ managed


def graceful_during_a_statement(c: Client, sid: int) -> None:
    repl = c.repl_pid(sid)
    slow = c.submit(sid, SLOW_STATEMENT)
    c.wait_statement(sid, slow["id"], "running", timeout=30)
    old_id, old_pid = live_supervisor(c)
    c.server.graceful()
    queued = c.submit(sid, "g * 2")
    st, states = wait_with_states(c, sid, slow["id"], timeout=60)
    assert text_of(st) == "42"
    st, more = wait_with_states(c, sid, queued["id"], timeout=30)
    assert text_of(st) == "82"
    assert (states | more) <= {"idle", "busy"}, states | more
    # The old generation's supervisor was stopped (not killed) and a new one took the session.
    assert not h.process_alive(old_pid)
    assert c.db_value(f"SELECT stopped_at IS NOT NULL FROM supervisors WHERE id = {old_id}") == "t"
    new_id, _ = owner(c, sid)
    assert new_id != old_id
    assert c.repl_pid(sid) == repl
    c.wait_session(sid, "idle", timeout=15)


def test_graceful_restart_during_a_statement_loses_nothing(managed, standalone):
    c, sid = managed
    graceful_during_a_statement(c, sid)


def test_managed_supervisor_killed_while_idle_is_respawned(managed):
    c, sid = managed
    repl = c.repl_pid(sid)
    old_id, old_pid = owner(c, sid)
    assert (old_id, old_pid) == live_supervisor(c)
    kill9(old_pid)
    # Posted while the supervisor may still be down: it waits in the database.
    st = c.submit(sid, "g + 1")
    new_id, new_pid = wait_new_supervisor(c, old_pid)
    assert new_id != old_id
    st, states = wait_with_states(c, sid, st["id"], timeout=60)
    assert text_of(st) == "42"  # the same interpreter: its globals survived
    assert states <= {"idle", "busy"}, states
    assert c.repl_pid(sid) == repl and h.process_alive(repl)
    assert owner(c, sid) == (new_id, new_pid)
    log = "\n".join(c.server.error_log_lines())
    assert f"livy-supervisor (pid {old_pid}) exited" in log and "starting it again" in log
    assert f"reattaching to its REPL (pid {repl})" in log
    c.wait_session(sid, "idle", timeout=15)


def test_managed_supervisor_killed_during_a_statement_loses_nothing(managed):
    c, sid = managed
    repl = c.repl_pid(sid)
    slow = c.submit(sid, SLOW_STATEMENT)
    c.wait_statement(sid, slow["id"], "running", timeout=30)
    _, old_pid = live_supervisor(c)
    kill9(old_pid)
    queued = c.submit(sid, "g")
    wait_new_supervisor(c, old_pid)
    st, states = wait_with_states(c, sid, slow["id"], timeout=60)
    assert text_of(st) == "42"
    assert st["started"] > 0 and st["completed"] - st["started"] >= 8000
    st, more = wait_with_states(c, sid, queued["id"], timeout=30)
    assert text_of(st) == "41"
    assert (states | more) <= {"idle", "busy"}, states | more
    assert c.repl_pid(sid) == repl
    c.wait_session(sid, "idle", timeout=15)


# ------------------------------------------------------------------ standalone


def test_standalone_supervisor_killed_and_restarted_loses_nothing(standalone):
    c, sid = standalone
    server = c.server
    c.wait_session(sid, "idle")
    assert text_of(c.run(sid, "kept = 'still here'")) == ""
    repl = c.repl_pid(sid)

    # Killed during a statement; a statement posted while no supervisor runs waits.
    slow = c.submit(sid, SLOW_STATEMENT)
    c.wait_statement(sid, slow["id"], "running", timeout=30)
    _, old_pid = live_supervisor(c)
    kill9(old_pid)
    server.stop_external_supervisor()  # reaps what is left of it (runuser, when root)
    queued = c.submit(sid, "kept")
    time.sleep(1)
    assert c.statement(sid, queued["id"])["state"] == "waiting"
    server.start_external_supervisor()
    wait_new_supervisor(c, old_pid)
    st, states = wait_with_states(c, sid, slow["id"], timeout=60)
    assert text_of(st) == "42"
    st, more = wait_with_states(c, sid, queued["id"], timeout=30)
    assert text_of(st) == "'still here'"
    assert (states | more) <= {"idle", "busy"}, states | more

    # Killed while idle, restarted: the session goes on.
    c.wait_session(sid, "idle", timeout=15)
    _, old_pid = live_supervisor(c)
    kill9(old_pid)
    server.stop_external_supervisor()
    server.start_external_supervisor()
    wait_new_supervisor(c, old_pid)
    assert c.text(sid, "kept.upper()") == "'STILL HERE'"
    assert c.repl_pid(sid) == repl
    assert c.session(sid)["state"] in {"idle", "busy"}


# ------------------------------------------------------------------ after a respawn


def test_graceful_restart_after_the_supervisor_was_respawned(managed):
    """A graceful restart once httpd has respawned its supervisor: httpd must survive it, stop
    the supervisor it respawned and start a new one; nothing is lost. Last in the file: when it
    fails, httpd is gone."""
    c, sid = managed
    _, old_pid = live_supervisor(c)
    kill9(old_pid)
    wait_new_supervisor(c, old_pid)
    c.wait_session(sid, "idle", timeout=15)
    graceful_during_a_statement(c, sid)
