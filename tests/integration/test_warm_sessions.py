"""Warm REPLs (supervisor setting warm_sessions): a REPL started ahead of demand serves the next
session whose settings it can serve, which is idle when POST /sessions answers.

One server (event MPM, managed supervisor, warm_sessions 1, max_sessions 2, REPLs as REPL_USER
when the tests run as root) carries the tests in file order, as a notebook site sees it: the warm
REPL is hidden from clients; a session takes it at once; the pool refills; a session whose
settings need a JVM of its own starts cold and, at capacity, the warm REPL gives up its room; a
REPL is never handed to a second session. Spark starts (four) are what the file costs.
"""

from __future__ import annotations

import os
import pwd
import signal
import threading
import time

import pytest
import requests

import livy_harness as h

from livy_client import (FAST_CONF, SPARK_START_TIMEOUT, Client, assert_processes_gone,
                         finish_server, start_server)

METRICS = "<Location />\n    LivyMetrics On\n</Location>\n"


@pytest.fixture(scope="module")
def warm(work_dir, pg, spark_env):
    pg.create_database("warm")
    factory = h.ServerFactory(work_dir, pg, "warm")
    try:
        server = factory(mpm="event", supervisor="managed", dbname="warm", extra_conf=METRICS,
                         supervisor_conf={"warm_sessions": 1, "max_sessions": 2,
                                          "check_interval": "200ms", "stop_grace": "4s"})
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    yield Client(server, pg, "warm")
    finish_server(factory)


@pytest.fixture(scope="module")
def facts():
    """What one test leaves for the next (ids, pids), in file order."""
    return {}


def warm_rows(c: Client) -> list[tuple[int, str, int | None]]:
    """The live warm REPLs' rows: (id, state, repl_pid), by id."""
    rows = c.db.psql("SELECT id, state, coalesce(repl_pid, 0) FROM sessions WHERE warm "
                     "AND ended_at IS NULL AND stop_requested IS NULL ORDER BY id", db=c.dbname)
    return [(int(i), s, int(p) or None) for i, s, p in rows]


def wait_warm_ready(c: Client, other_than=()) -> tuple[int, int]:
    """Waits for a ready warm REPL (not one of other_than): its row id and REPL pid."""
    found = {}

    def ready():
        for i, state, pid in warm_rows(c):
            if state == "idle" and pid and i not in other_than:
                found["row"] = (i, pid)
                return True
        return False

    h.wait_for(ready, SPARK_START_TIMEOUT, "a ready warm REPL")
    return found["row"]


def metric(c: Client, name: str) -> int:
    r = c.server.get("/metrics")
    assert r.status_code == 200, r.text
    values = [float(line.rsplit(" ", 1)[1]) for line in r.text.splitlines()
              if line.startswith(name + "{")]
    assert len(values) == 1, (name, r.text)
    return int(values[0])


def take(c: Client, **body) -> tuple[dict, float]:
    started = time.monotonic()
    r = c.server.post("/sessions", json=body)
    took = time.monotonic() - started
    assert r.status_code == 201, (r.status_code, r.text)
    s = r.json()
    assert r.headers["Location"] == f"/sessions/{s['id']}"
    return s, took


def run_text(c: Client, sid: int, code: str) -> str:
    st = c.run(sid, code)
    assert st["output"]["status"] == "ok", st
    return st["output"]["data"]["text/plain"]


def test_a_warm_repl_is_started_and_hidden_from_clients(warm, facts):
    row, pid = wait_warm_ready(warm)
    facts["first"] = (row, pid)
    assert h.process_alive(pid)
    # no listing, GET, statement, log or DELETE reaches it
    listing = warm.server.get("/sessions").json()
    assert listing["total"] == 0 and listing["sessions"] == [], listing
    for method, path, body in [("GET", f"/sessions/{row}", None),
                               ("GET", f"/sessions/{row}/state", None),
                               ("GET", f"/sessions/{row}/log", None),
                               ("POST", f"/sessions/{row}/statements", {"code": "1"}),
                               ("DELETE", f"/sessions/{row}", None)]:
        r = warm.server.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert r.json() == {"msg": f"Session '{row}' not found."}, r.text
    assert metric(warm, "livy_supervisor_warm_repls") == 1
    assert metric(warm, "livy_supervisor_sessions") == 0
    assert "livy_sessions{" not in warm.server.get("/metrics").text
    assert h.process_alive(pid), "a refused DELETE must leave the warm REPL alone"


def test_a_new_session_takes_the_warm_repl_and_is_idle_at_once(warm, facts):
    row, pid = facts["first"]
    s, took = take(warm, kind="pyspark", name="notebook-1", heartbeatTimeoutInSecond=0)
    assert s["id"] == row and s["state"] == "idle", s
    assert s["name"] == "notebook-1" and s["kind"] == "pyspark", s
    assert took < 1.0, f"POST /sessions took {took:.3f}s"
    assert warm.repl_pid(row) == pid
    assert warm.session(row)["state"] == "idle"
    assert [x["id"] for x in warm.server.get("/sessions").json()["sessions"]] == [row]
    assert run_text(warm, row, "1 + 1") == "2"
    # under the REPL user, like any session's REPL
    who = run_text(warm, row, "import os, pwd; print(pwd.getpwuid(os.geteuid()).pw_name)")
    expected = h.REPL_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert who.strip() == expected
    assert run_text(warm, row, "spark.range(10).count()") == "10"
    run_text(warm, row, "x_warm = 41")
    assert any("takes this warm REPL" in line for line in warm.log(row)), warm.log(row)
    facts["taken"] = (row, pid)


def test_a_new_warm_repl_replaces_the_taken_one(warm, facts):
    taken_row, taken_pid = facts["taken"]
    row, pid = wait_warm_ready(warm, other_than={taken_row})
    assert row > taken_row and pid != taken_pid
    assert metric(warm, "livy_supervisor_warm_repls") == 1
    assert metric(warm, "livy_supervisor_sessions") == 1
    facts["second"] = (row, pid)


def test_settings_that_need_their_own_jvm_start_cold_and_take_the_warm_repls_room(warm, facts):
    warm_row, warm_pid = facts["second"]
    # at capacity (max_sessions 2): the session taken above and this cold one
    s, _ = take(warm, kind="pyspark", conf=FAST_CONF)
    assert s["id"] not in (warm_row,) and s["state"] in {"not_started", "starting"}, s
    # the warm REPL gives up its room and ends, unseen by clients
    assert_processes_gone([warm_pid], 60, "the warm REPL at capacity")
    h.wait_for(lambda: not warm_rows(warm), 30, "the warm row to end")
    assert warm.db_value(f"SELECT ended_at IS NOT NULL AND warm FROM sessions "
                         f"WHERE id = {warm_row}") in ("t", True)
    warm.wait_session(s["id"], "idle")
    assert run_text(warm, s["id"], "spark.conf.get('spark.sql.shuffle.partitions')") == "'2'"
    assert metric(warm, "livy_supervisor_warm_repls") == 0
    assert warm.server.get("/sessions").json()["total"] == 2
    cold_pid = warm.repl_pid(s["id"])
    r = warm.server.delete(f"/sessions/{s['id']}")
    assert r.status_code == 200, r.text
    assert_processes_gone([cold_pid], 60, "the deleted cold session's REPL")


def test_a_repl_serves_one_session_only(warm, facts):
    taken_row, taken_pid = facts["taken"]
    app_before = warm.session(taken_row)["appId"]
    row, pid = wait_warm_ready(warm, other_than={taken_row, facts["second"][0]})
    assert pid != taken_pid
    assert warm.server.delete(f"/sessions/{taken_row}").status_code == 200
    assert_processes_gone([taken_pid], 60, "the deleted session's REPL")
    s, took = take(warm, kind="sql")
    assert s["id"] == row and s["state"] == "idle" and s["kind"] == "sql", s
    assert took < 1.0, f"POST /sessions took {took:.3f}s"
    assert warm.repl_pid(s["id"]) not in (taken_pid,)
    assert warm.session(s["id"])["appId"] != app_before
    # a fresh namespace: what the previous session defined is not there
    st = warm.run(s["id"], "'x_warm' in globals()", kind="pyspark")
    assert st["output"]["data"]["text/plain"] == "False", st
    # the session's own kind is its statements' default
    st = warm.run(s["id"], "SELECT 1 + 1 AS two", kind=None)
    assert st["output"]["status"] == "ok" and st["output"]["data"]["application/json"][
        "data"] == [[2]], st
    assert warm.server.delete(f"/sessions/{s['id']}").status_code == 200


def test_a_deleted_session_is_gone_for_good(warm, facts):
    taken_row, _ = facts["taken"]
    r = warm.server.get(f"/sessions/{taken_row}")
    # ended sessions stay listed for list_ended; either way never handed out again
    assert r.status_code in (200, 404), r.text
    if r.status_code == 200:
        assert r.json()["state"] in {"dead", "killed", "shutting_down"}, r.text
    assert warm.db_value(f"SELECT warm FROM sessions WHERE id = {taken_row}") in ("f", False)
    with requests.Session() as http:
        r = http.post(f"{warm.server.url}/sessions/{taken_row}/statements", json={"code": "1"})
    assert r.status_code in (400, 404), r.text


def test_two_creates_at_once_share_no_warm_repl(warm, facts):
    """Two sessions created together while one warm REPL is ready: one takes it, the other
    starts cold; neither waits for the other, and both run."""
    row, pid = wait_warm_ready(warm, other_than=set(facts.get("used", ())) | {
        facts["taken"][0], facts["second"][0]})
    answers = []

    def create():
        answers.append(take(warm, kind="pyspark")[0])

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 2, answers
    served = [s for s in answers if s["id"] == row]
    cold = [s for s in answers if s["id"] != row]
    assert len(served) == 1 and served[0]["state"] == "idle", answers
    assert len(cold) == 1 and cold[0]["state"] in {"not_started", "starting"}, answers
    warm.wait_session(cold[0]["id"], "idle")
    pids = []
    for s in answers:
        assert run_text(warm, s["id"], "1 + 1") == "2"
        pids.append(warm.repl_pid(s["id"]))
    assert pids[0] != pids[1] and pid in pids
    for s in answers:
        assert warm.server.delete(f"/sessions/{s['id']}").status_code == 200
    assert_processes_gone(pids, 60, "the two sessions' REPLs")
    facts["used"] = set(facts.get("used", ())) | {row}


def test_a_restarted_supervisor_keeps_its_warm_repl(warm, facts):
    """The managed supervisor killed with SIGKILL: httpd starts it again, it reattaches to the
    warm REPL it left (still hidden, still warm), and the next session takes it."""
    row, pid = wait_warm_ready(warm, other_than=set(facts["used"]) | {
        facts["taken"][0], facts["second"][0]})
    old = warm.db.psql("SELECT id, pid FROM supervisors WHERE stopped_at IS NULL "
                       "ORDER BY id DESC LIMIT 1", db=warm.dbname)
    old_pid = int(old[0][1])
    os.kill(old_pid, signal.SIGKILL)
    assert not h.wait_gone([old_pid], 10)

    def successor():
        rows = warm.db.psql(f"SELECT v.id FROM supervisors v JOIN sessions s ON s.supervisor_id "
                            f"= v.id WHERE s.id = {row} AND v.pid <> {old_pid} "
                            f"AND v.stopped_at IS NULL", db=warm.dbname)
        return bool(rows)

    h.wait_for(successor, 60, "the new supervisor to take over the warm REPL")
    assert h.process_alive(pid)
    assert warm.server.get("/sessions").json()["total"] == 0
    h.wait_for(lambda: "reattaching to its REPL" in "\n".join(warm.server.error_log_lines()), 30,
               "the new supervisor to reattach")
    s, took = take(warm, kind="pyspark")
    assert s["id"] == row and s["state"] == "idle", s
    assert warm.repl_pid(row) == pid
    assert run_text(warm, row, "sc.parallelize(range(4)).sum()") == "6"
    assert warm.server.delete(f"/sessions/{row}").status_code == 200
    assert_processes_gone([pid], 60, "the session's REPL")
