"""POST /sessions/{id}/completion, answered by the session's REPL through its supervisor, as a
Livy client sees it: real Spark behind a managed livy-supervisor.

The module records the request and notifies the session's supervisor, which asks the REPL; the
module polls for the candidates, borrowing a pooled connection for each look only, and answers
`{"candidates": []}` when none come within LivyCompletionTimeout. The server here has a single
httpd process with one database connection (LivyDatabasePoolMax 1), so a completion that held
its connection while it waits would hold up every other request: the slow-REPL test shows it
does not. One pyspark session (`py`) carries the tests in file order.
"""

from __future__ import annotations

import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server

DBNAME = "completion"
TIMEOUT_S = 3  # LivyCompletionTimeout of the server under test
SINGLE_PROCESS = """\
    ServerLimit 1
    StartServers 1
    MaxRequestWorkers 10
    ThreadsPerChild 10
    MinSpareThreads 1
    MaxSpareThreads 10
    LivyDatabasePoolMax 1
    LivyDatabaseAcquireTimeout 30
    """


@pytest.fixture(scope="module")
def comp(work_dir, pg, spark_env):
    pg.create_database(DBNAME)
    factory = h.ServerFactory(work_dir, pg, DBNAME)
    extra = (textwrap.dedent(SINGLE_PROCESS)
             + f"LivyCompletionTimeout {TIMEOUT_S}\n"
             + "<Location /asknone>\n    LivyCompletionTimeout 0\n</Location>\n")
    try:
        server = factory(mpm="event", supervisor="managed", dbname=DBNAME, extra_conf=extra,
                         supervisor_conf={"check_interval": "200ms", "stop_grace": "4s"})
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    # The premise of the slow-REPL test: one process, one connection.
    sizing = [line for line in server.error_log_lines() if "LivyDatabasePoolMax" in line]
    assert sizing and "up to 1 processes x LivyDatabasePoolMax 1 = 1 connections" in sizing[-1], sizing
    yield Client(server, pg, DBNAME)
    finish_server(factory)


@pytest.fixture(autouse=True)
def checked_error_log(comp):
    yield from h.error_log_checked(comp.server)


@pytest.fixture(scope="module")
def py(comp):
    sid = comp.create(kind="pyspark", conf=FAST_CONF)["id"]
    comp.wait_session(sid, "idle")
    comp.text(sid, "import os\nmy_frame = spark.range(3)\nmy_value = 41\n"
                   "spark.range(3).createOrReplaceTempView('people_view')\nprint('ok')")
    return sid


def complete(c: Client, sid: int, code: str, kind: str = "pyspark", cursor: int | None = None,
             mount: str = "") -> tuple[list[str], float]:
    body = {"code": code, "kind": kind}
    if cursor is not None:
        body["cursor"] = cursor
    t0 = time.monotonic()
    r = c.server.post(f"{mount}/sessions/{sid}/completion", json=body)
    took = time.monotonic() - t0
    assert r.status_code == 200, (r.status_code, r.text)
    out = r.json()
    assert list(out) == ["candidates"] and isinstance(out["candidates"], list), out
    assert all(isinstance(x, str) for x in out["candidates"]), out
    return out["candidates"], took


def waiting_requests(c: Client) -> int:
    return int(c.db_value("SELECT count(*) FROM completions"))


# ------------------------------------------------------------------ pyspark


def test_names_in_the_sessions_namespace(comp, py):
    got, took = complete(comp, py, "x = my_")
    print(f"\ncompletion of 'my_' in {took * 1000:.1f} ms: {got}")
    assert {"my_frame", "my_value"} <= set(got), got
    assert all(x.startswith("my_") for x in got), got


def test_attributes_after_a_dot(comp, py):
    got, _ = complete(comp, py, "my_frame.sel")
    assert any(x.startswith("my_frame.select") for x in got), got
    assert all(x.startswith("my_frame.sel") for x in got), got


def test_module_members_at_the_cursor(comp, py):
    got, _ = complete(comp, py, "os.pa + 1", cursor=5)
    assert any(x.startswith("os.path") for x in got), got
    assert all(x.startswith("os.pa") for x in got), got


def test_nothing_to_complete_is_no_candidates(comp, py):
    assert complete(comp, py, "1 + ")[0] == []
    assert complete(comp, py, "no_such_name_anywhere")[0] == []


# ------------------------------------------------------------------ sql


def test_sql_keywords_in_the_words_case_and_views(comp, py):
    assert "SELECT" in complete(comp, py, "SEL", kind="sql")[0]
    assert "select" in complete(comp, py, "sel", kind="sql")[0]
    got, _ = complete(comp, py, "SELECT * FROM peo", kind="sql")
    assert got == ["people_view"], got


# ------------------------------------------------------------------ while busy, slow, or not asked


def test_completion_while_a_statement_runs(comp, py):
    st = comp.submit(py, "import time\ntime.sleep(60)")
    comp.wait_statement(py, st["id"], "running")
    got, _ = complete(comp, py, "my_v")
    assert got == ["my_value"], got
    assert comp.session(py)["state"] == "busy"
    comp.cancel(py, st["id"])
    comp.wait_statement(py, st["id"], "cancelled")


def test_a_slow_repl_costs_the_timeout_and_holds_no_connection(comp, py):
    # dir() of this object takes 6 s in the REPL: the module gives up after TIMEOUT_S.
    comp.text(py, "import time\nclass Slow:\n    def __dir__(self):\n        time.sleep(6)\n"
                  "        return ['zzz']\nslow = Slow()\nprint('ok')")
    result = {}

    def slow_completion():
        result["candidates"], result["took"] = complete(comp, py, "slow.z")
        result["done"] = time.monotonic()

    t = threading.Thread(target=slow_completion)
    t.start()
    time.sleep(0.5)
    # Meanwhile, the one process with its one connection serves others at once.
    def get(_):
        r = requests.get(f"{comp.server.url}/sessions/{py}", timeout=30)
        return r.status_code, time.monotonic()
    with ThreadPoolExecutor(10) as ex:
        others = list(ex.map(get, range(20)))
    t.join(30)
    print(f"\nslow completion: {result.get('candidates')} after {result.get('took', 0):.2f}s; "
          f"20 GETs done meanwhile")
    assert result["candidates"] == [], result
    assert TIMEOUT_S - 0.1 <= result["took"] < TIMEOUT_S + 5, result
    assert [s for s, _ in others] == [200] * 20, others
    assert all(done < result["done"] for _, done in others), "a GET waited for the completion"
    # The request was dropped when the module gave up; the late answer brings nothing back.
    assert waiting_requests(comp) == 0
    time.sleep(4)  # the REPL answers late
    assert waiting_requests(comp) == 0
    assert complete(comp, py, "my_v")[0] == ["my_value"], "the REPL no longer completes"


def test_livy_completion_timeout_0_answers_none_without_asking(comp, py):
    got, took = complete(comp, py, "my_v", mount="/asknone")
    assert got == [] and waiting_requests(comp) == 0, got


def test_a_starting_session_answers_none_at_once(comp, py):
    sid = comp.create(kind="pyspark", conf=FAST_CONF)["id"]
    got, _ = complete(comp, sid, "my_v")
    assert got == [] and waiting_requests(comp) == 0
    r = comp.server.delete(f"/sessions/{sid}")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", ["-1", "2x", "61", "many"])
def test_a_bad_completion_timeout_stops_httpd_at_startup(livy_server, value):
    srv = livy_server(mpm="event", start=False, extra_conf=f"LivyCompletionTimeout {value}\n")
    with pytest.raises(h.HarnessError) as e:
        srv.start(timeout=20)
    assert "LivyCompletionTimeout must be a duration up to a minute" in str(e.value), str(e.value)[:2000]
