"""Shared drivers (beyond Livy; the httpd directive LivySharedDrivers, or a session's conf
livy.session.sharedDriver): sessions of one owner, proxy user and Spark settings that ask for it
run in one REPL process and driver JVM (up to the supervisor's shared_driver_max_sessions), each
with its own Python namespace, SparkSession, job group, cancel and output capture.

One server (event MPM, managed supervisor, a database of its own, Basic auth with
LivyAccessControl On for two owners, alice and bob; shared_driver_max_sessions 3; REPLs as
REPL_USER when the tests run as root; a mount /defaulted with LivySharedDrivers On) carries the
tests in file order, sharing what they learn in `facts`: alice's first shared session starts a
driver cold and the next ones join it; their namespaces, temp views, SQL settings and prints stay
apart; their statements run side by side and are cancelled apart; SystemExit and Scala stay in
their session; bad requests are 400s; other settings, another owner, no opt-in or a full driver
each mean another process; deleting a session keeps the driver for the others, the supervisor
killed with SIGKILL reattaches to it, and the last DELETE ends it. Which process a session runs
in is read from the database (sessions.repl_pid: inside a REPL's PID namespace os.getpid() is 1)
and from Spark (the SparkContext's applicationId, one per driver JVM).

Spark starts (five: alice's shared driver, one with other settings, bob's, an unshared session's
and the driver a full one makes) are what the file costs; every join is idle in about a second.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import time
from pathlib import Path

import pytest

import livy_harness as h

from livy_client import FAST_CONF, Client, UserClient, assert_processes_gone, finish_server

DBNAME = "shared"
USERS = ("alice", "bob")
SHARED = "livy.session.sharedDriver"
MAX_PER_DRIVER = 3  # the supervisor's shared_driver_max_sessions here
COLD = {"not_started", "starting"}
JOIN_SECONDS = 5.0  # POST to idle for a session joining a running driver (a cold start: ~5-25 s)
# A pure-Python minute, interruptible between sleeps (no Spark job: spark_master is local[1], one
# task slot, which the other session's jobs need).
LONG_LOOP = "import time\nfor _ in range(600):\n    time.sleep(0.1)\n'a finished'"
# A Spark job of eight tasks sleeping half a second each (about 4 s on local[1]'s one slot).
SLOW_JOB = ("def slow(x):\n    import time\n    time.sleep(0.5)\n    return x\n"
            "sc.parallelize(range(8), 8).map(slow).sum()")


# ------------------------------------------------------------------ the server and its clients


def shared_conf_text(htpasswd: Path) -> str:
    return (h.basic_auth_conf(htpasswd, "LivyAccessControl On\nLivyAllowedUsers alice bob")
            + h.policy_mount("/defaulted", "    LivySharedDrivers On"))


@pytest.fixture(scope="module")
def srv(work_dir, pg, spark_env):
    htpasswd = h.write_htpasswd(work_dir / "shared-htpasswd", USERS)
    pg.create_database(DBNAME)
    factory = h.ServerFactory(work_dir, pg, DBNAME)
    try:
        server = factory(mpm="event", supervisor="managed", dbname=DBNAME,
                         extra_conf=shared_conf_text(htpasswd),
                         supervisor_conf={"max_sessions": 8,
                                          "shared_driver_max_sessions": MAX_PER_DRIVER,
                                          "check_interval": "200ms", "stop_grace": "4s"})
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    yield server
    finish_server(factory)


@pytest.fixture(scope="module")
def alice(srv, pg):
    return UserClient(srv, pg, DBNAME, "alice")


@pytest.fixture(scope="module")
def bob(srv, pg):
    return UserClient(srv, pg, DBNAME, "bob")


@pytest.fixture(scope="module")
def facts():
    """What one test leaves for the next (session ids, the shared driver's pid), in file order."""
    return {}


# ------------------------------------------------------------------ helpers


def shared_conf(value="true", extra: dict | None = None) -> dict:
    """FAST_CONF (plus extra) asking for a shared driver with value."""
    return {**FAST_CONF, **(extra or {}), SHARED: value}


def create(c: Client, mount: str = "", **body) -> tuple[dict, float]:
    """POST {mount}/sessions with body: the new session and when the POST was sent."""
    started = time.monotonic()
    r = c.server.post(f"{mount}/sessions", json=body)
    assert r.status_code == 201, (r.status_code, r.text)
    s = r.json()
    assert r.headers["Location"] == f"{mount}/sessions/{s['id']}", r.headers
    assert s["state"] in COLD | {"idle"}, s
    return s, started


def start_cold(c: Client, mount: str = "", **body) -> int:
    """A session that must start a driver of its own: not idle at POST, idle after a Spark start."""
    s, _ = create(c, mount, **body)
    assert s["state"] in COLD, s
    c.wait_session(s["id"], "idle")
    return s["id"]


def join(c: Client, mount: str = "", **body) -> int:
    """A session that joins a running driver: idle within JOIN_SECONDS of its POST."""
    s, started = create(c, mount, **body)
    c.wait_session(s["id"], "idle", timeout=60, interval=0.05)
    took = time.monotonic() - started
    assert took < JOIN_SECONDS, f"session {s['id']} took {took:.1f}s from POST to idle{c.diagnose(s['id'])}"
    return s["id"]


def app_id(c: Client, sid: int) -> str:
    """The applicationId of the SparkContext the session's statements see (one per driver JVM)."""
    return c.text(sid, "sc.applicationId")


def shared_flag(c: Client, sid: int) -> bool:
    return c.db_value(f"SELECT shared_driver FROM sessions WHERE id = {int(sid)}") == "t"


def stored_conf(c: Client, sid: int) -> dict:
    return json.loads(c.db_value(f"SELECT conf::text FROM sessions WHERE id = {int(sid)}") or "{}")


def live_on(c: Client, pid: int) -> list[int]:
    """The sessions (not ended) whose REPL process is pid."""
    rows = c.db.psql(f"SELECT id FROM sessions WHERE repl_pid = {int(pid)} AND ended_at IS NULL "
                     "ORDER BY id", db=c.dbname)
    return [int(r[0]) for r in rows]


def members_of(c: Client, sid: int) -> list[int]:
    """The session's REPL process and what runs in its process session (the driver JVM)."""
    pid = c.repl_pid(sid)
    members = h.session_members(pid)
    assert pid in members and any("java" in h.process_cmdline(p) for p in members), \
        [h.process_cmdline(p)[:80] for p in members]
    return members


def error_of(st: dict) -> dict:
    assert st["state"] == "available", st
    out = st["output"]
    assert out["status"] == "error", st
    return out


def json_msg(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert list(body) == ["msg"] and isinstance(body["msg"], str) and body["msg"], body
    return body["msg"]


def delete(c: Client, sid: int) -> None:
    r = c.server.delete(f"/sessions/{sid}")
    assert r.status_code == 200 and r.json() == {"msg": "deleted"}, (r.status_code, r.text)
    r = c.server.get(f"/sessions/{sid}")
    assert r.status_code == 404, (r.status_code, r.text)


def wait_ended(c: Client, sid: int, timeout: float = 60) -> None:
    h.wait_for(lambda: c.db_value(f"SELECT ended_at IS NOT NULL FROM sessions "
                                  f"WHERE id = {int(sid)}") == "t",
               timeout, f"session {sid}'s row to end")


def session_count(c: Client) -> int:
    return int(c.db_value("SELECT count(*) FROM sessions"))


# ------------------------------------------------------------------ starting and joining


def test_the_first_shared_session_starts_a_driver_cold(alice, facts):
    a = start_cold(alice, kind="pyspark", name="first", conf=shared_conf())
    assert shared_flag(alice, a)
    # the key asks for sharing and is no Spark setting: gone from the stored and the live conf
    conf = stored_conf(alice, a)
    assert SHARED not in conf and all(conf.get(k) == v for k, v in FAST_CONF.items()), conf
    assert alice.text(a, f"sc.getConf().get('{SHARED}', 'absent')") == "'absent'"
    assert alice.text(a, "spark.conf.get('spark.sql.shuffle.partitions')") == "'2'"
    alice.text(a, "a_secret = 'only in a'")
    facts["a"] = a
    facts["pid"] = alice.repl_pid(a)
    facts["app"] = app_id(alice, a)
    assert len(members_of(alice, a)) >= 2


def test_a_second_shared_session_joins_the_running_driver(alice, facts):
    pid, a = facts["pid"], facts["a"]
    b = join(alice, kind="pyspark", name="second", conf=shared_conf())
    facts["b"] = b
    assert shared_flag(alice, b)
    assert alice.repl_pid(b) == pid
    assert app_id(alice, b) == facts["app"]
    assert live_on(alice, pid) == [a, b]
    assert alice.session(a)["state"] == "idle"
    assert alice.text(b, "spark.range(5).count()") == "5"
    h.wait_for(lambda: any("shared driver" in line.lower() for line in alice.log(b)), 15,
               f"session {b}'s log to mention the shared driver")


def test_a_joined_session_runs_as_the_repl_user(alice, facts):
    b = facts["b"]
    who = alice.text(b, "import os, pwd; print(pwd.getpwuid(os.geteuid()).pw_name)")
    expected = h.REPL_USER if h.IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name
    assert who.strip() == expected
    status = Path(f"/proc/{facts['pid']}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert uid == pwd.getpwnam(expected).pw_uid


# ------------------------------------------------------------------ what stays apart


def test_shared_sessions_keep_their_namespaces_apart(alice, facts):
    a, b = facts["a"], facts["b"]
    out = error_of(alice.run(b, "a_secret"))
    assert out["ename"] == "NameError" and "a_secret" in out["evalue"], out
    assert alice.text(b, "b_only = 'only in b'\nb_only") == "'only in b'"
    assert alice.text(a, "'b_only' in globals()") == "False"
    assert alice.text(a, "a_secret") == "'only in a'"
    # each has its Spark entry points
    assert alice.text(b, "type(spark).__name__, type(sc).__name__") == \
        "('SparkSession', 'SparkContext')"


def test_shared_sessions_keep_their_temp_views_and_sql_settings_apart(alice, facts):
    a, b = facts["a"], facts["b"]
    assert alice.text(a, "spark.range(3).createOrReplaceTempView('only_in_a')\n"
                         "spark.conf.set('spark.sql.shuffle.partitions', '5')\n"
                         "spark.catalog.tableExists('only_in_a')") == "True"
    assert alice.text(b, "spark.catalog.tableExists('only_in_a')") == "False"
    assert alice.text(b, "'only_in_a' in [t.name for t in spark.catalog.listTables()]") == "False"
    st = alice.run(a, "SELECT count(*) AS n FROM only_in_a", kind="sql")
    assert st["output"]["status"] == "ok" and st["output"]["data"]["application/json"][
        "data"] == [[3]], st
    error_of(alice.run(b, "SELECT count(*) AS n FROM only_in_a", kind="sql"))
    # SQL settings belong to a session's SparkSession; the SparkContext is the one driver's
    assert alice.text(a, "spark.conf.get('spark.sql.shuffle.partitions')") == "'5'"
    assert alice.text(b, "spark.conf.get('spark.sql.shuffle.partitions')") == "'2'"
    assert app_id(alice, a) == app_id(alice, b) == facts["app"]


def test_prints_land_in_their_own_sessions_output(alice, facts):
    a, b = facts["a"], facts["b"]
    code = "import time\nfor i in range(40):\n    print('{tag}', i)\n    time.sleep(0.05)"
    sta = alice.submit(a, code.format(tag="from-a"))
    stb = alice.submit(b, code.format(tag="from-b"))
    done_a = alice.wait_statement(a, sta["id"])
    done_b = alice.wait_statement(b, stb["id"])
    # the two ran at the same time on the one driver
    assert done_a["started"] < done_b["completed"] and done_b["started"] < done_a["completed"], \
        (done_a, done_b)
    for tag, done in (("from-a", done_a), ("from-b", done_b)):
        assert done["output"]["status"] == "ok", done
        lines = done["output"]["data"]["text/plain"].splitlines()
        assert lines == [f"{tag} {i}" for i in range(40)], (tag, lines)


def test_statements_of_shared_sessions_run_side_by_side_and_cancel_apart(alice, facts):
    a, b = facts["a"], facts["b"]
    long_a = alice.submit(a, LONG_LOOP)
    alice.wait_statement(a, long_a["id"], "running", timeout=30)
    assert alice.session(a)["state"] == "busy"
    assert alice.session(b)["state"] == "idle"
    # B is served while A's statement runs
    t = time.monotonic()
    assert alice.text(b, "1 + 1") == "2"
    took = time.monotonic() - t
    assert took < 5, f"B's statement took {took:.1f}s while A's ran"
    assert alice.statement(a, long_a["id"])["state"] == "running"
    # A's cancel, while B runs a Spark job of its own job group: only A's statement ends
    job_b = alice.submit(b, SLOW_JOB)
    alice.wait_statement(b, job_b["id"], "running", timeout=30)
    time.sleep(0.5)
    t = time.monotonic()
    alice.cancel(a, long_a["id"])
    final = alice.wait_statement(a, long_a["id"], ("cancelled", "available"), timeout=30)
    took = time.monotonic() - t
    assert final["state"] == "cancelled" and final["output"] is None, final
    assert took < 10, f"the cancel took {took:.1f}s"
    done = alice.wait_statement(b, job_b["id"], timeout=60)
    assert done["output"]["status"] == "ok" and done["output"]["data"]["text/plain"] == "28", done
    # both usable, both namespaces intact
    alice.wait_session(a, "idle", timeout=15)
    assert alice.text(a, "a_secret") == "'only in a'"
    assert alice.text(b, "b_only") == "'only in b'"
    assert alice.repl_pid(a) == alice.repl_pid(b) == facts["pid"]


def test_system_exit_in_one_shared_session_leaves_the_other_running(alice, facts):
    a, b = facts["a"], facts["b"]
    busy_b = alice.submit(b, "import time\nfor _ in range(30):\n    time.sleep(0.1)\n'b went on'")
    alice.wait_statement(b, busy_b["id"], "running", timeout=30)
    out = error_of(alice.run(a, "raise SystemExit(3)"))
    assert out["ename"] == "SystemExit" and out["evalue"] == "3", out
    out = error_of(alice.run(a, "import sys\nsys.exit('bye')"))
    assert out["ename"] == "SystemExit", out
    done = alice.wait_statement(b, busy_b["id"], timeout=30)
    assert done["output"]["status"] == "ok" and done["output"]["data"]["text/plain"] == \
        "'b went on'", done
    assert h.process_alive(facts["pid"])
    assert alice.repl_pid(a) == alice.repl_pid(b) == facts["pid"]
    assert alice.text(a, "a_secret") == "'only in a'"
    assert alice.text(b, "b_only") == "'only in b'"
    alice.wait_session(a, "idle", timeout=15)
    alice.wait_session(b, "idle", timeout=15)


def test_a_scala_statement_in_a_shared_session_is_an_error(alice, facts):
    a, b = facts["a"], facts["b"]
    out = error_of(alice.run(a, "val x = 1 + 1", kind="spark"))
    said = " ".join([out["ename"], out["evalue"]] + list(out["traceback"]))
    assert "scala" in said.lower(), out
    assert alice.text(a, "a_secret") == "'only in a'"
    assert alice.text(b, "1 + 1") == "2"
    assert alice.repl_pid(a) == facts["pid"] and h.process_alive(facts["pid"])


# ------------------------------------------------------------------ requests refused


def test_kinds_spark_and_sparkr_cannot_ask_for_a_shared_driver(alice, facts):
    before = session_count(alice)
    for kind in ("spark", "sparkr"):
        for value in ("true", True):
            r = alice.server.post("/sessions", json={"kind": kind, "conf": shared_conf(value)})
            assert "sharedDriver" in json_msg(r, 400), (kind, value, r.text)
        r = alice.server.post("/defaulted/sessions", json={"kind": kind, "conf": shared_conf()})
        assert "sharedDriver" in json_msg(r, 400), (kind, r.text)
    assert session_count(alice) == before


def test_a_shared_driver_value_other_than_true_or_false_is_400(alice, facts):
    before = session_count(alice)
    for value in ("yes", "no", "1", "0", "", "on", 1, 0, None):
        r = alice.server.post("/sessions", json={"kind": "pyspark", "conf": shared_conf(value)})
        assert SHARED in json_msg(r, 400), (value, r.text)
    r = alice.server.post("/defaulted/sessions", json={"kind": "pyspark",
                                                       "conf": shared_conf("maybe")})
    assert SHARED in json_msg(r, 400), r.text
    assert session_count(alice) == before


# ------------------------------------------------------------------ who gets a driver of their own


def test_other_spark_settings_start_another_driver(alice, facts):
    pid = facts["pid"]
    assert len(live_on(alice, pid)) == 2 < MAX_PER_DRIVER  # room left: only the settings differ
    sid = start_cold(alice, kind="pyspark",
                     conf=shared_conf("true", {"spark.sql.shuffle.partitions": "3"}))
    assert shared_flag(alice, sid)
    assert alice.repl_pid(sid) != pid
    assert app_id(alice, sid) != facts["app"]
    assert alice.text(sid, "spark.conf.get('spark.sql.shuffle.partitions')") == "'3'"
    assert alice.text(sid, "'a_secret' in globals()") == "False"
    members = members_of(alice, sid)
    delete(alice, sid)
    assert_processes_gone(members, 60, "the other settings' driver after its only session's DELETE")
    assert h.process_alive(pid)


def test_another_owner_never_joins_the_driver(alice, bob, facts):
    pid = facts["pid"]
    assert len(live_on(alice, pid)) == 2 < MAX_PER_DRIVER  # room left: only the owner differs
    sid = start_cold(bob, kind="pyspark", conf=shared_conf())
    assert bob.session(sid)["owner"] == "bob"
    assert shared_flag(bob, sid)
    assert bob.repl_pid(sid) != pid
    assert app_id(bob, sid) != facts["app"]
    assert bob.text(sid, "'a_secret' in globals()") == "False"
    assert live_on(alice, pid) == [facts["a"], facts["b"]]
    members = members_of(bob, sid)
    delete(bob, sid)
    assert_processes_gone(members, 60, "bob's driver after his session's DELETE")
    assert h.process_alive(pid)


def test_without_the_opt_in_a_session_gets_its_own_process(alice, facts):
    pid = facts["pid"]
    assert len(live_on(alice, pid)) == 2 < MAX_PER_DRIVER  # room left: only the opt-in differs
    sid = start_cold(alice, kind="pyspark", conf=dict(FAST_CONF))
    assert not shared_flag(alice, sid)
    assert alice.repl_pid(sid) != pid
    assert app_id(alice, sid) != facts["app"]
    assert alice.text(sid, "'a_secret' in globals()") == "False"
    assert live_on(alice, pid) == [facts["a"], facts["b"]]
    facts["unshared"] = sid  # kept: a shared session must not join it either (the full-driver test)


def test_livy_shared_drivers_on_makes_sharing_the_default(alice, facts):
    pid = facts["pid"]
    c = join(alice, mount="/defaulted", kind="pyspark", conf=dict(FAST_CONF))
    facts["c"] = c
    assert shared_flag(alice, c)
    assert alice.repl_pid(c) == pid
    assert app_id(alice, c) == facts["app"]
    assert alice.text(c, "c_only = 'only in c'\n'a_secret' in globals()") == "False"
    assert live_on(alice, pid) == [facts["a"], facts["b"], c]
    # "false" opts a session out where sharing is the default: it starts cold, on its own
    s, _ = create(alice, mount="/defaulted", kind="pyspark", conf=shared_conf("false"))
    assert s["state"] in COLD, s
    assert not shared_flag(alice, s["id"])
    assert SHARED not in stored_conf(alice, s["id"])
    delete(alice, s["id"])
    wait_ended(alice, s["id"])
    left = alice.db_value(f"SELECT repl_pid FROM sessions WHERE id = {s['id']}")
    assert not left or int(left) != pid, left
    if left:
        assert_processes_gone([int(left)], 60, "the opted-out session's REPL after its DELETE")
    assert live_on(alice, pid) == [facts["a"], facts["b"], c]


def test_a_full_driver_makes_the_next_session_start_another(alice, facts):
    pid, unshared = facts["pid"], facts["unshared"]
    assert len(live_on(alice, pid)) == MAX_PER_DRIVER
    d = start_cold(alice, kind="pyspark", conf=shared_conf())
    new_pid = alice.repl_pid(d)
    assert new_pid not in (pid, alice.repl_pid(unshared)), (new_pid, pid)
    new_app = app_id(alice, d)
    assert new_app not in (facts["app"], app_id(alice, unshared))
    assert len(live_on(alice, pid)) == MAX_PER_DRIVER
    # the next one joins the driver that has room
    e = join(alice, kind="pyspark", conf=shared_conf())
    assert alice.repl_pid(e) == new_pid and app_id(alice, e) == new_app
    assert live_on(alice, new_pid) == [d, e]
    # deleting the session that started it keeps the driver for the other
    members = members_of(alice, d)
    delete(alice, d)
    wait_ended(alice, d)
    assert h.process_alive(new_pid)
    assert alice.text(e, "spark.range(4).count()") == "4"
    delete(alice, e)
    assert_processes_gone(members, 60, "the second shared driver after its last session's DELETE")
    unshared_members = members_of(alice, unshared)
    delete(alice, unshared)
    assert_processes_gone(unshared_members, 60, "the unshared session's REPL after its DELETE")
    assert h.process_alive(pid)


# ------------------------------------------------------------------ deleting, restarting, ending


def test_deleting_the_first_shared_session_leaves_the_others_running(alice, facts):
    pid, a, b, c = facts["pid"], facts["a"], facts["b"], facts["c"]
    delete(alice, a)
    wait_ended(alice, a)
    assert h.process_alive(pid)
    assert live_on(alice, pid) == [b, c]
    assert alice.session(b)["state"] == "idle" and alice.session(c)["state"] == "idle"
    assert alice.text(b, "b_only") == "'only in b'"
    assert alice.text(c, "c_only") == "'only in c'"
    assert app_id(alice, b) == facts["app"]
    # a new shared session (kind sql, the conf's value a JSON boolean) still joins that process
    f = join(alice, kind="sql", conf=shared_conf(True))
    facts["f"] = f
    assert shared_flag(alice, f) and alice.repl_pid(f) == pid
    assert app_id(alice, f) == facts["app"]
    st = alice.run(f, "SELECT 1 + 1 AS two", kind=None)
    assert st["output"]["status"] == "ok" and st["output"]["data"]["application/json"][
        "data"] == [[2]], st
    assert alice.text(f, "'a_secret' in globals() or spark.catalog.tableExists('only_in_a')") == \
        "False"
    alice.text(f, "f_only = 'only in f'")
    assert live_on(alice, pid) == [b, c, f]


def test_a_killed_supervisor_reattaches_to_the_shared_driver(alice, facts):
    """The managed supervisor killed with SIGKILL: httpd starts it again, and it takes the
    sessions of the shared driver back without restarting it."""
    pid, ids = facts["pid"], [facts["b"], facts["c"], facts["f"]]
    old = alice.db.psql("SELECT id, pid FROM supervisors WHERE stopped_at IS NULL "
                        "ORDER BY id DESC LIMIT 1", db=alice.dbname)
    old_pid = int(old[0][1])
    os.kill(old_pid, signal.SIGKILL)
    assert not h.wait_gone([old_pid], 10)

    def taken_over():
        rows = alice.db.psql(f"SELECT count(*) FROM sessions s JOIN supervisors v ON "
                             f"s.supervisor_id = v.id WHERE s.id IN ({', '.join(map(str, ids))}) "
                             f"AND v.pid <> {old_pid} AND v.stopped_at IS NULL", db=alice.dbname)
        return int(rows[0][0]) == len(ids)

    h.wait_for(taken_over, 60, "the new supervisor to take over the shared driver's sessions")
    assert h.process_alive(pid)
    for sid in ids:
        alice.wait_session(sid, "idle", timeout=60)
        assert alice.repl_pid(sid) == pid
    assert alice.text(facts["b"], "b_only") == "'only in b'"
    assert alice.text(facts["c"], "c_only") == "'only in c'"
    assert alice.text(facts["f"], "f_only") == "'only in f'"
    assert alice.text(facts["b"], "sc.parallelize(range(4)).sum()") == "6"
    assert app_id(alice, facts["c"]) == facts["app"]
    assert live_on(alice, pid) == ids


def test_deleting_every_session_of_a_driver_ends_its_process(alice, facts):
    pid, b, c, f = facts["pid"], facts["b"], facts["c"], facts["f"]
    members = members_of(alice, b)
    delete(alice, b)
    wait_ended(alice, b)
    assert h.process_alive(pid)
    assert alice.text(c, "c_only") == "'only in c'"
    delete(alice, c)
    wait_ended(alice, c)
    assert h.process_alive(pid)
    assert alice.text(f, "f_only") == "'only in f'"
    delete(alice, f)
    assert_processes_gone(members, 60, "the shared driver after its last session's DELETE")
    wait_ended(alice, f)
    assert live_on(alice, pid) == []
    h.wait_for(lambda: alice.db_value("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
               == "0", 30, "every session's row to end")
