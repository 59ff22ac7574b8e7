"""Interactive sessions end to end, through httpd, as a Livy client sees them: real Spark behind a
managed livy-supervisor (event MPM; one test under prefork).

Spark starts are what this file costs (a cold local Spark takes 10-25 s on two cores), so it keeps
them few and overlaps them: one shared session (`main`) carries the statement tests in file order
and is deleted by the last of them; the sessions whose ending is under test (stop, idle timeout,
ttl, heartbeat, a driver that cannot start) are created as soon as `main` is idle and start while
the statement tests run; the prefork server has one session of its own for SIGKILL and the retain
period. Everything is read over HTTP except what a client cannot see: the REPL's pid (to find its
processes in /proc) and when a session ended (`sessions.ended_at`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import pytest
import requests

import livy_harness as h

from livy_client import (ENDED_STATES, FAST_CONF, JAVA_FAST, SESSION_STATES, SPARK_START_TIMEOUT,
                         Client, assert_processes_gone, finish_server, spark_log_lines,
                         start_server)

MAIN_CONF = {"spark.driver.extraJavaOptions": JAVA_FAST, "spark.sql.shuffle.partitions": "2"}
OUTPUT_MAX_BYTES = 4096
TTL_SECONDS = 60  # over twice a cold start under load here (~25 s), so the ttl ends a session that is up
IDLE_TIMEOUT = "5s"
HEARTBEAT_TIMEOUT = 3


@pytest.fixture(scope="module")
def e2e(work_dir, pg, spark_env):
    """The event-MPM server with its managed supervisor and a database of its own (the module
    outlives the function-scoped `livy_server` factory, and a private database keeps other
    modules' rows away from this supervisor)."""
    factory, server = start_server(work_dir, pg, "e2e", "e2e", "event", {
        "check_interval": "200ms",
        "stop_grace": "4s",
        "output_max_bytes": OUTPUT_MAX_BYTES,
    })
    yield Client(server, pg, "e2e")
    finish_server(factory)


class Heartbeater(threading.Thread):
    """Polls GET /sessions/{id} (a heartbeat) every half second until the session has been idle
    for `idle_for` seconds, then stops, as a client that went away."""

    def __init__(self, url: str, sid: int, idle_for: float):
        super().__init__(daemon=True, name=f"heartbeat-{sid}")
        self.url = f"{url}/sessions/{sid}"
        self.idle_for = idle_for
        self.states: list[str] = []
        self.last_beat_ms = 0
        self.error: str | None = None
        self.quit = threading.Event()

    def run(self):
        idle_since = None
        with requests.Session() as http:
            while not self.quit.is_set():
                try:
                    r = http.get(self.url, timeout=30)
                    self.last_beat_ms = int(time.time() * 1000)
                    state = r.json()["state"] if r.status_code == 200 else f"HTTP {r.status_code}"
                except (requests.RequestException, ValueError, KeyError) as e:
                    self.error = repr(e)
                    return
                if not self.states or self.states[-1] != state:
                    self.states.append(state)
                if state in ENDED_STATES or state.startswith("HTTP"):
                    return
                if state == "idle":
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= self.idle_for:
                        return
                else:
                    idle_since = None
                self.quit.wait(0.5)


@pytest.fixture(scope="module")
def main(e2e):
    """The shared session the statement tests use. Three statements are posted while it starts;
    its start is watched from POST to idle."""
    info = {"seen": []}
    s = e2e.create(kind="shared", conf=MAIN_CONF)
    info["created"] = s
    sid = s["id"]
    info["early"] = [e2e.submit(sid, code)
                     for code in ("seen = ['a']", "seen.append('b')", "seen.append('c'); seen")]
    info["state_after_posting"] = e2e.session(sid)["state"]
    info["idle"] = e2e.wait_session(sid, "idle", seen=info["seen"])
    info["id"] = sid
    return info


@pytest.fixture(scope="module")
def lifecycle(e2e, main):
    """The sessions whose endings the later tests check, created once `main` is up so that their
    Spark starts overlap the statement tests."""
    c = e2e
    out = {}
    out["stop"] = c.create(kind="pyspark", name="to-stop", conf=FAST_CONF)["id"]
    # Busy for 8 s, longer than its idle timeout: only the idle time after it counts.
    out["idle"] = c.create(kind="pyspark", idleTimeout=IDLE_TIMEOUT, conf=FAST_CONF)["id"]
    out["idle_statement"] = c.submit(out["idle"], "import time\ntime.sleep(8)\n'slept'")["id"]
    # Busy with a long statement when its time to live passes: stopped whatever it does.
    out["ttl"] = c.create(kind="pyspark", ttl=f"{TTL_SECONDS}s", conf=FAST_CONF)["id"]
    out["ttl_statement"] = c.submit(out["ttl"], "import time\ntime.sleep(3600)")["id"]
    out["heartbeat"] = c.create(kind="pyspark", heartbeatTimeoutInSecond=HEARTBEAT_TIMEOUT,
                                conf=FAST_CONF)["id"]
    beater = Heartbeater(c.server.url, out["heartbeat"], idle_for=2 * HEARTBEAT_TIMEOUT)
    beater.start()
    out["beater"] = beater
    out["bad_memory"] = c.create(kind="pyspark", driverMemory="abc", conf=FAST_CONF)["id"]
    yield out
    beater.quit.set()
    beater.join(35)


# ------------------------------------------------------------------ start and statements


def test_session_starts_to_idle_with_app_id_and_spark_ui(e2e, main, lifecycle):
    # (lifecycle: its sessions start now, while the statement tests run)
    seen = main["seen"]
    assert set(seen) <= SESSION_STATES and seen[-1] == "idle", seen
    # Livy's order: not yet claimed, starting, then up (busy while the early statements run).
    order = ["not_started", "starting", "busy", "idle"]
    assert all(s in order for s in seen), seen
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    s = main["idle"]
    assert s["kind"] == "shared"
    assert re.fullmatch(r"local-\d+", s["appId"]), s
    # The UI through httpd (the driver's own address is on loopback; test_spark_doors.py).
    assert s["appInfo"]["sparkUiUrl"] == f"{e2e.server.url}/sessions/{s['id']}/ui/", s["appInfo"]
    r = requests.get(s["appInfo"]["sparkUiUrl"], timeout=30)
    assert r.status_code == 200 and "Spark" in r.text
    assert s["log"] and len(s["log"]) <= 10


def test_statements_posted_while_starting_run_in_order_afterwards(e2e, main):
    sid = main["id"]
    early = main["early"]
    assert main["state_after_posting"] in {"not_started", "starting"}
    assert [st["id"] for st in early] == [0, 1, 2]
    assert all(st["state"] == "waiting" and st["output"] is None for st in early)
    sts = [e2e.wait_statement(sid, st["id"]) for st in early]
    assert sts[2]["output"]["data"] == {"text/plain": "['a', 'b', 'c']"}
    starts = [st["started"] for st in sts]
    assert all(starts) and starts == sorted(starts)
    assert all(st["completed"] >= st["started"] for st in sts)


def test_one_plus_one(e2e, main):
    sid = main["id"]
    st = e2e.submit(sid, "1 + 1")
    assert st["code"] == "1 + 1" and st["output"] is None and st["progress"] == 0.0
    st = e2e.wait_statement(sid, st["id"])
    assert st["output"] == {"status": "ok", "execution_count": st["id"], "data": {"text/plain": "2"}}
    assert st["progress"] == 1.0
    assert st["started"] > 1e12 and st["completed"] >= st["started"]
    assert list(st) == ["id", "code", "state", "output", "progress", "started", "completed"]
    # Byte for byte, as Livy writes it: the output's keys in Livy's order.
    raw = e2e.server.get(f"/sessions/{sid}/statements/{st['id']}").text
    assert f'"output":{{"status":"ok","execution_count":{st["id"]},"data":{{"text/plain":"2"}}}}' \
        in raw, raw


def test_print_then_expression(e2e, main):
    assert e2e.text(main["id"], "print('hello')\nanswer = 40\nanswer + 2") == "hello\n42"


def test_error_output_shape(e2e, main):
    sid = main["id"]
    st = e2e.run(sid, "x = 1\nnot_defined_anywhere + x")
    out = st["output"]
    assert out["status"] == "error" and out["execution_count"] == st["id"]
    assert out["ename"] == "NameError"
    assert out["evalue"] == "name 'not_defined_anywhere' is not defined"
    tb = out["traceback"]
    assert isinstance(tb, list) and all(isinstance(line, str) for line in tb)
    assert tb[0] == "Traceback (most recent call last):\n" and tb[-1].startswith("NameError")
    assert not any("livy_repl" in line for line in tb), tb
    assert "data" not in out
    assert list(out) == ["status", "execution_count", "ename", "evalue", "traceback"], out
    raw = e2e.server.get(f"/sessions/{sid}/statements/{st['id']}").text
    assert f'"output":{{"status":"error","execution_count":{st["id"]},"ename":"NameError",' in raw, raw
    # A failing statement does not change the session's state.
    assert e2e.wait_session(sid, "idle", timeout=15)["state"] == "idle"


def test_json_magic(e2e, main):
    sid = main["id"]
    e2e.run(sid, "payload = {'a': [1, 2], 'b': None, 'c': 'x'}")
    out = e2e.run(sid, "%json payload")["output"]
    assert out["status"] == "ok"
    assert out["data"] == {"application/json": {"a": [1, 2], "b": None, "c": "x"}}


def test_table_magic(e2e, main):
    sid = main["id"]
    e2e.run(sid, "rows = [{'n': 1, 's': 'a'}, {'n': 2, 's': 'b'}]")
    out = e2e.run(sid, "%table rows")["output"]
    assert out["status"] == "ok"
    table = out["data"]["application/vnd.livy.table.v1+json"]
    assert table == {"headers": [{"name": "n", "type": "INT_TYPE"}, {"name": "s", "type": "STRING_TYPE"}],
                     "data": [[1, "a"], [2, "b"]]}


def test_sql_statement_on_the_shared_session(e2e, main):
    sid = main["id"]
    # The same SparkSession serves pyspark and sql statements.
    e2e.run(sid, "spark.range(5).createOrReplaceTempView('five')")
    st = e2e.run(sid, "SELECT count(*) AS n, 'x' AS s FROM five", kind="sql")
    out = st["output"]
    assert out["status"] == "ok", out
    body = out["data"]["application/json"]
    assert body["schema"]["type"] == "struct"
    assert [(f["name"], f["type"]) for f in body["schema"]["fields"]] == [("n", "long"), ("s", "string")]
    assert body["data"] == [[5, "x"]]
    err = e2e.run(sid, "SELECT * FROM no_such_table", kind="sql")["output"]
    assert err["status"] == "error" and "no_such_table" in err["evalue"]


def test_scala_and_r_statements_in_a_pyspark_session(e2e, main):
    sid = main["id"]
    st = e2e.run(sid, 'println("hi"); spark.range(3).count()', kind="spark", timeout=120)
    assert st["state"] == "available"
    out = st["output"]
    assert out["status"] == "ok" and out["data"]["text/plain"] == "hi\nres0: Long = 3\n", out
    # an R statement in a pyspark session runs in the session's R process
    out = e2e.run(sid, 'cat("hi from R\\n")', kind="sparkr", timeout=60)["output"]
    assert out["status"] == "ok" and out["data"]["text/plain"] == "hi from R", out
    assert e2e.text(sid, "'still here'") == "'still here'"


def test_progress_and_session_busy_then_idle(e2e, main):
    sid = main["id"]
    code = ("import time\n"
            "sc.parallelize(range(12), 12).map(lambda v: time.sleep(0.4) or v).sum()")
    e2e.wait_session(sid, "idle", timeout=15)
    st = e2e.submit(sid, code)
    progress, session_states = [], ["idle"]
    deadline = time.monotonic() + 120
    while True:
        cur = e2e.statement(sid, st["id"])
        progress.append(cur["progress"])
        state = e2e.session(sid)["state"]
        if not session_states or session_states[-1] != state:
            session_states.append(state)
        if cur["state"] == "available":
            break
        assert time.monotonic() < deadline, f"statement still {cur['state']}{e2e.diagnose(sid)}"
        time.sleep(0.05)
    assert cur["output"]["data"] == {"text/plain": "66"}
    assert cur["progress"] == 1.0
    assert all(0.0 <= p <= 1.0 for p in progress)
    assert any(0.0 < p < 1.0 for p in progress), progress  # Spark's task progress shows through
    assert progress == sorted(progress), progress
    assert session_states[:2] == ["idle", "busy"] and set(session_states) == {"idle", "busy"}, session_states
    # Back to idle promptly after the last statement.
    t = time.monotonic()
    e2e.wait_session(sid, "idle", timeout=10, interval=0.05)
    assert time.monotonic() - t < 5


def test_cancel_a_running_loop_keeps_globals(e2e, main):
    sid = main["id"]
    e2e.run(sid, "kept = 'kept across a cancel'")
    st = e2e.submit(sid, "while True: pass")
    seen = []
    e2e.wait_statement(sid, st["id"], "running", timeout=30, seen=seen)
    assert e2e.session(sid)["state"] == "busy"
    time.sleep(0.5)
    t = time.monotonic()
    e2e.cancel(sid, st["id"])
    final = e2e.wait_statement(sid, st["id"], ("cancelled", "available"), timeout=30, seen=seen)
    took = time.monotonic() - t
    assert final["state"] == "cancelled", final
    assert seen in (["waiting", "running", "cancelling", "cancelled"], ["waiting", "running", "cancelled"],
                    ["running", "cancelling", "cancelled"], ["running", "cancelled"]), seen
    assert took < 10, f"the cancel took {took:.1f}s"
    assert final["output"] is None and final["progress"] == 1.0 and final["completed"] > 0
    e2e.wait_session(sid, "idle", timeout=15)
    assert e2e.text(sid, "kept") == "'kept across a cancel'"


def test_cancel_a_waiting_statement_is_immediate(e2e, main):
    sid = main["id"]
    first = e2e.submit(sid, "import time\ntime.sleep(4)\n'first'")
    e2e.wait_statement(sid, first["id"], "running", timeout=30)
    second = e2e.submit(sid, "ran_second = True\n'second'")
    assert second["state"] == "waiting"
    e2e.cancel(sid, second["id"])
    st = e2e.statement(sid, second["id"])  # at once: no REPL round trip
    assert st["state"] == "cancelled" and st["output"] is None and st["progress"] == 1.0
    assert st["started"] == 0
    assert e2e.wait_statement(sid, first["id"])["output"]["data"] == {"text/plain": "'first'"}
    e2e.wait_session(sid, "idle", timeout=15)
    assert e2e.text(sid, "'ran_second' in globals()") == "False"
    assert e2e.statement(sid, second["id"])["state"] == "cancelled"


def test_output_is_truncated_with_a_marker(e2e, main):
    out = e2e.run(main["id"], "print('x' * 20000)")["output"]
    text = out["data"]["text/plain"]
    assert text.startswith("xxxx")
    assert re.search(r"\n\[output truncated: \d+ bytes over the limit of 4096\]$", text), text[-200:]
    assert len(json.dumps(out, separators=(",", ":")).encode()) <= OUTPUT_MAX_BYTES


def test_session_log_has_supervisor_repl_and_spark_driver_lines(e2e, main):
    sid = main["id"]
    r = e2e.server.get(f"/sessions/{sid}/log?from=0&size=-1")
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["id", "from", "total", "log"]
    log = body["log"]
    assert body["id"] == sid and body["from"] == 0 and body["total"] == len(log) > 0
    assert any(line.startswith("livy-supervisor: starting the REPL") for line in log), log[:5]
    assert any("Spark started" in line for line in log), log
    assert spark_log_lines(log), log  # Spark's driver log reaches the session log
    page = e2e.server.get(f"/sessions/{sid}/log?from=1&size=2").json()
    assert page["from"] == 1 and page["total"] >= body["total"] and page["log"] == log[1:3]
    # The session's `log` is the last 10 lines (Spark may add lines meanwhile).
    tail = e2e.session(sid)["log"]
    after = e2e.log(sid)
    assert any(tail == after[max(0, k - 10):k] for k in range(len(log), len(after) + 1)), tail


def test_delete_stops_the_repl_and_its_processes(e2e, main):
    sid = main["id"]
    pid = e2e.repl_pid(sid)
    members = h.session_members(pid)
    assert pid in members and len(members) >= 2, members  # the REPL and its JVM
    assert any("java" in h.process_cmdline(p) for p in members), [h.process_cmdline(p)[:80] for p in members]
    r = e2e.server.delete(f"/sessions/{sid}")
    assert r.status_code == 200 and r.json() == {"msg": "deleted"}
    r = e2e.server.get(f"/sessions/{sid}")
    assert r.status_code == 404 and r.json() == {"msg": f"Session '{sid}' not found."}
    assert sid not in e2e.listed()
    assert_processes_gone(members, 20, f"session {sid} after DELETE")


# ------------------------------------------------------------------ stop, timeouts, failures


def test_stop_ends_the_session_dead_and_listed(e2e, lifecycle):
    sid = lifecycle["stop"]
    e2e.wait_session(sid, "idle")
    members = h.session_members(e2e.repl_pid(sid))
    r = e2e.server.post(f"/sessions/{sid}/stop")
    assert r.status_code == 204 and r.content == b""
    seen = []
    e2e.wait_session(sid, "dead", timeout=30, seen=seen)
    assert set(seen) <= {"shutting_down", "dead"}, seen
    listed = e2e.listed()
    assert listed[sid]["state"] == "dead" and listed[sid]["name"] == "to-stop"
    assert_processes_gone(members, 20, f"session {sid} after stop")
    r = e2e.server.post(f"/sessions/{sid}/statements", json={"code": "1", "kind": "pyspark"})
    assert r.status_code == 400, r.text
    assert any("stopped by a client request" in line for line in e2e.log(sid))


def test_bad_driver_memory_ends_dead_with_sparks_error_in_the_log(e2e, lifecycle):
    sid = lifecycle["bad_memory"]
    s = e2e.wait_session(sid, ENDED_STATES, timeout=SPARK_START_TIMEOUT)
    assert s["state"] == "dead" and s["driverMemory"] == "abc"
    log = e2e.log(sid)
    assert any("Invalid maximum heap size: -Xmxabc" in line for line in log), log[-30:]


def test_idle_timeout_counts_only_idle_time(e2e, lifecycle):
    sid = lifecycle["idle"]
    s = e2e.wait_listed_state(sid, ENDED_STATES, timeout=SPARK_START_TIMEOUT + 60)
    assert s["state"] == "dead" and s["idleTimeout"] == IDLE_TIMEOUT
    log = e2e.log(sid)
    assert any("idle for more than 5s" in line for line in log), log[-10:]
    # Busy for 8 s with a 5 s idle timeout: not stopped while busy; stopped 5 s after it.
    st = e2e.statement(sid, lifecycle["idle_statement"])
    assert st["state"] == "available" and st["output"]["data"] == {"text/plain": "'slept'"}
    idle_ms = e2e.ended_ms(sid) - st["completed"]
    assert idle_ms >= 4800, f"ended {idle_ms} ms after its last statement"


def test_ttl_stops_a_busy_session(e2e, lifecycle):
    sid = lifecycle["ttl"]
    s = e2e.wait_listed_state(sid, ENDED_STATES, timeout=TTL_SECONDS + 60)
    assert s["state"] == "dead" and s["ttl"] == f"{TTL_SECONDS}s"
    log = e2e.log(sid)
    ttl_text = f"{TTL_SECONDS // 60}m" if TTL_SECONDS % 60 == 0 else f"{TTL_SECONDS}s"
    assert any(f"time to live (ttl {ttl_text}) has passed" in line for line in log), log[-10:]
    # It was up and running its statement when the ttl ended it.
    st = e2e.statement(sid, lifecycle["ttl_statement"])
    assert st["started"] > 0, (st, "Spark took longer than the ttl to start; raise TTL_SECONDS")
    lived_ms = e2e.ended_ms(sid) - e2e.created_ms(sid)
    assert TTL_SECONDS * 1000 <= lived_ms < (TTL_SECONDS + 30) * 1000, lived_ms


def test_heartbeat_timeout_ends_a_session_its_client_left(e2e, lifecycle):
    sid = lifecycle["heartbeat"]
    beater = lifecycle["beater"]
    beater.join(SPARK_START_TIMEOUT)
    assert not beater.is_alive() and beater.error is None, beater.error
    # Polled: alive through starting and 6 s of idle, twice the heartbeat timeout.
    assert beater.states[-1] == "idle", beater.states
    assert set(beater.states) <= {"not_started", "starting", "idle"}, beater.states
    # Then only GET /sessions, which is not a heartbeat: it ends.
    s = e2e.wait_listed_state(sid, ENDED_STATES, timeout=60)
    assert s["state"] == "dead" and s["heartbeatTimeoutInSecond"] == HEARTBEAT_TIMEOUT
    assert any("no client heartbeat for more than 3s" in line for line in e2e.log(sid))
    # The module writes a heartbeat at most once a second, so the last one stored may be up to
    # a second older than the last call.
    assert e2e.ended_ms(sid) - beater.last_beat_ms >= (HEARTBEAT_TIMEOUT - 1) * 1000 - 200


# ------------------------------------------------------------------ prefork


def test_prefork_session_killed_repl_and_retain_period(livy_server, pg, spark_env):
    """Under prefork: a session runs a statement; its REPL killed with SIGKILL ends it within
    seconds with the reason in its log; it stays listed as dead for list_ended, then leaves."""
    pg.create_database("e2e_prefork")
    server = livy_server(mpm="prefork", supervisor="managed", dbname="e2e_prefork", supervisor_conf={
        "check_interval": "200ms", "list_ended": "5s", "stop_grace": "4s"})
    c = Client(server, pg, "e2e_prefork")
    sid = c.create(kind="pyspark", conf=FAST_CONF)["id"]
    c.wait_session(sid, "idle")
    assert c.text(sid, "1 + 1") == "2"
    pid = c.repl_pid(sid)
    members = h.session_members(pid)
    os.kill(pid, signal.SIGKILL)
    t = time.monotonic()
    seen = []
    while True:
        s = c.session(sid)
        if not seen or seen[-1] != s["state"]:
            seen.append(s["state"])
        if s["state"] == "dead":
            break
        assert time.monotonic() - t < 15, f"still {s['state']} 15 s after SIGKILL{c.diagnose(sid)}"
        time.sleep(0.1)
    assert time.monotonic() - t < 10
    assert set(seen) <= {"idle", "error", "dead"}, seen
    log = c.log(sid)
    assert any("unexpectedly" in line and "killed by signal 9" in line for line in log), log[-10:]
    assert c.listed()[sid]["state"] == "dead"
    assert_processes_gone(members, 15, "the JVM of a killed REPL")
    # The retain period: listed while it lasts, then gone from the list and from GET.
    deadline = time.monotonic() + 30
    while sid in c.listed():
        assert time.monotonic() < deadline, "the ended session is still listed after 30 s"
        time.sleep(0.25)
    assert c.ended_ms(sid) <= int(time.time() * 1000) - 4500
    assert server.get(f"/sessions/{sid}").status_code == 404


def test_a_session_whose_spark_never_starts_ends_dead_after_start_timeout(work_dir, pg, spark_env):
    factory, server = start_server(work_dir, pg, "start-timeout", "start_timeout", "event",
                                   {"start_timeout": "3s", "check_interval": "200ms"})
    try:
        c = Client(server, pg, "start_timeout")
        # The driver JVM waits for a debugger that never comes: Spark never starts.
        hung = "-agentlib:jdwp=transport=dt_socket,server=y,suspend=y"
        sid = c.create(kind="pyspark", conf={"spark.driver.extraJavaOptions": hung})["id"]
        st = c.submit(sid, "1 + 1")
        seen = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = c.session(sid)["state"]
            if not seen or seen[-1] != state:
                seen.append(state)
            if state in ENDED_STATES:
                break
            time.sleep(0.1)
        assert seen[-1] == "dead" and "error" not in seen, seen
        log = "\n".join(c.log(sid))
        assert "Spark did not start within 3s (start_timeout)" in log, log[-2000:]
        out = c.statement(sid, st["id"])
        assert out["state"] == "available" and out["output"]["ename"] == "SessionDead", out
        assert "Spark did not start within 3s" in out["output"]["evalue"], out
    finally:
        finish_server(factory)
