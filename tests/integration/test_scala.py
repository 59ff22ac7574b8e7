"""Scala sessions (kind `spark`) through httpd with real Spark: the Scala interpreter in the
driver's own JVM, its outputs as Livy prints them, classes defined in the REPL inside Spark tasks,
errors, incomplete input, %json and %table, cancel, completion, a shared session's three kinds
on one SparkSession, and pylivy's SessionKind.SPARK.

One server (event MPM, managed supervisor) and two sessions started together (a Spark start each)
carry the tests in file order; pylivy's session is a third.
"""

from __future__ import annotations

import time

import pytest
from livy import LivySession, SessionKind, SparkRuntimeError
from livy.models import OutputStatus

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server, start_server


@pytest.fixture(scope="module")
def scala_server(work_dir, pg, spark_env):
    factory, server = start_server(work_dir, pg, "scala", "scala", "event",
                                   {"check_interval": "200ms"})
    c = Client(server, pg, "scala")
    ids = {"spark": c.create(kind="spark", conf=FAST_CONF)["id"],
           "shared": c.create(kind="shared", conf=FAST_CONF)["id"]}
    for sid in ids.values():
        c.wait_session(sid, "idle")
    yield c, ids
    for sid in ids.values():
        c.server.delete(f"/sessions/{sid}")
    finish_server(factory)


@pytest.fixture
def scala(scala_server):
    c, ids = scala_server
    return c, ids["spark"]


def ok_text(c: Client, sid: int, code: str, kind: str | None = None, timeout: float = 120) -> str:
    st = c.run(sid, code, kind=kind, timeout=timeout)
    out = st["output"]
    assert out["status"] == "ok", out
    assert out["execution_count"] == st["id"]
    return out["data"]["text/plain"]


def error_of(c: Client, sid: int, code: str, kind: str | None = None) -> dict:
    st = c.run(sid, code, kind=kind)
    out = st["output"]
    assert out["status"] == "error", out
    assert set(out) == {"status", "execution_count", "ename", "evalue", "traceback"}, out
    return out


def test_expressions_and_definitions_print_as_livy_prints_them(scala):
    c, sid = scala
    assert ok_text(c, sid, "1 + 1") == "res0: Int = 2\n"
    assert ok_text(c, sid, "val x = 5") == "x: Int = 5\n"
    assert ok_text(c, sid, 'println("hello " + x); x * 2') == "hello 5\nres1: Int = 10\n"
    assert ok_text(c, sid, "var counter = 1") == "counter: Int = 1\n"
    assert ok_text(c, sid, "counter += 1\ncounter").endswith("res2: Int = 2\n")
    assert ok_text(c, sid, "case class P(name: String, age: Int)") == "defined class P\n"
    assert ok_text(c, sid, "object Tools { def twice(i: Int) = 2 * i }") == "defined object Tools\n"
    assert ok_text(c, sid, "// only a comment") == ""
    # the statement's default kind is the session's
    assert c.session(sid)["kind"] == "spark"


def test_spark_sc_and_sqlcontext_are_bound(scala):
    c, sid = scala
    assert ok_text(c, sid, "spark.range(10).count()").endswith(": Long = 10\n")
    assert ok_text(c, sid, "sc.parallelize(1 to 4, 2).map(_ * 2).sum").endswith(": Double = 20.0\n")
    assert ok_text(c, sid, 'sqlContext.sql("SELECT 41 + 1 AS v").first().getInt(0)').endswith(
        ": Int = 42\n")
    # spark.implicits._ is imported
    assert ok_text(c, sid, "Seq(1, 2, 3).toDF(\"n\").count()").endswith(": Long = 3\n")


def test_repl_classes_work_in_spark_tasks(scala):
    c, sid = scala
    text = ok_text(c, sid, 'sc.parallelize(1 to 4, 2).map(i => P("p" + i, i * 10))'
                           '.filter(_.age > 15).map(p => Tools.twice(p.age)).collect().mkString(",")')
    assert text.endswith(': String = 40,60,80\n'), text
    text = ok_text(c, sid, 'Seq(P("a", 1), P("b", 2), P("c", 3)).toDS().filter(_.age >= 2)'
                           '.map(_.name).collect().sorted.mkString(",")')
    assert text.endswith(": String = b,c\n"), text


def test_compile_errors_and_exceptions_are_errors(scala):
    c, sid = scala
    out = error_of(c, sid, "undefinedName + 1")
    assert out["ename"] == "Error"
    assert out["evalue"] == "error: not found: value undefinedName", out
    out = error_of(c, sid, 'throw new IllegalStateException("boom")')
    assert out["ename"] == "Error"
    assert out["evalue"] == "java.lang.IllegalStateException: boom", out
    assert out["traceback"] and all(isinstance(line, str) for line in out["traceback"])
    out = error_of(c, sid, "val y: Int = \"text\"")
    assert out["evalue"] == "error: type mismatch;", out
    assert any("found" in line and "String" in line for line in out["traceback"]), out
    # the session goes on, its definitions kept
    assert ok_text(c, sid, "x + 1").endswith(": Int = 6\n")


def test_incomplete_input_is_an_error_not_a_hang(scala):
    c, sid = scala
    started = time.monotonic()
    out = error_of(c, sid, "def f(a: Int")
    assert out["ename"] == "Error" and out["evalue"] == "incomplete statement", out
    assert time.monotonic() - started < 30
    assert ok_text(c, sid, "def f(a: Int) = a + 1\nf(1)").endswith(": Int = 2\n")
    assert ok_text(c, sid, "f(41)").endswith(": Int = 42\n")


def test_json_and_table_magics(scala):
    c, sid = scala
    ok_text(c, sid, 'val people = Seq(P("ann", 31), P("bob", 42))')
    st = c.run(sid, "%json people", kind=None)
    assert st["output"]["status"] == "ok", st
    assert st["output"]["data"]["application/json"] == [{"name": "ann", "age": 31},
                                                        {"name": "bob", "age": 42}]
    st = c.run(sid, "%table people", kind=None)
    table = st["output"]["data"]["application/vnd.livy.table.v1+json"]
    assert table["headers"] == [{"name": "age", "type": "BIGINT_TYPE"},
                                {"name": "name", "type": "STRING_TYPE"}], table
    assert table["data"] == [[31, "ann"], [42, "bob"]]
    # an RDD: its first 10 elements
    ok_text(c, sid, "val numbers = sc.parallelize(1 to 100)")
    st = c.run(sid, "%json numbers", kind=None)
    assert st["output"]["data"]["application/json"] == list(range(1, 11)), st
    st = c.run(sid, "%json nobody", kind=None)
    assert st["output"]["status"] == "error" and st["output"]["ename"] == "NameError", st
    assert st["output"]["evalue"] == "Value nobody does not exist", st
    st = c.run(sid, "%plot people", kind=None)
    assert st["output"]["ename"] == "UnknownMagic", st


def test_cancel_interrupts_a_running_statement_and_the_session_goes_on(scala):
    c, sid = scala
    for code in ["Thread.sleep(120000); 1",
                 "sc.parallelize(1 to 2, 2).map { i => Thread.sleep(120000); i }.count()"]:
        st = c.submit(sid, code, kind=None)
        c.wait_statement(sid, st["id"], ("running",), timeout=60)
        time.sleep(1)
        started = time.monotonic()
        c.cancel(sid, st["id"])
        done = c.wait_statement(sid, st["id"], ("cancelled", "available"), timeout=60)
        assert done["state"] == "cancelled", done
        assert time.monotonic() - started < 30
    assert ok_text(c, sid, "x").endswith(": Int = 5\n")  # the same interpreter


def test_completion_from_the_scala_compiler(scala):
    """(Selected alone by the sanitizer pass: defines what it completes.)"""
    c, sid = scala
    ok_text(c, sid, "var counterOfCompletions = 0")
    deadline = time.monotonic() + 30
    while True:
        r = c.server.post(f"/sessions/{sid}/completion",
                          json={"code": "spark.rea", "kind": "spark", "cursor": 9})
        assert r.status_code == 200, r.text
        if r.json()["candidates"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "read" in r.json()["candidates"], r.text
    r = c.server.post(f"/sessions/{sid}/completion", json={"code": "counterOf", "kind": "spark"})
    assert "counterOfCompletions" in r.json()["candidates"], r.text


def test_a_shared_session_runs_scala_sql_and_python_on_one_sparksession(scala_server):
    c, ids = scala_server
    sid = ids["shared"]
    ok_text(c, sid, 'Seq((1, "one"), (2, "two"), (3, "three")).toDF("id", "word")'
                    '.createOrReplaceTempView("words")', kind="spark")
    st = c.run(sid, "SELECT word FROM words WHERE id >= 2 ORDER BY id", kind="sql")
    assert st["output"]["data"]["application/json"]["data"] == [["two"], ["three"]], st
    assert ok_text(c, sid, "spark.table('words').count()", kind="pyspark") == "3"
    # and back: Python's view in Scala
    ok_text(c, sid, "spark.range(5).createOrReplaceTempView('five')", kind="pyspark")
    assert ok_text(c, sid, 'spark.table("five").count()', kind="spark").endswith(": Long = 5\n")


def test_pylivy_scala_session(scala_server):
    c, _ = scala_server
    with LivySession.create(c.server.url, kind=SessionKind.SPARK, spark_conf=FAST_CONF,
                            echo=False) as session:
        sid = session.session_id
        out = session.run("spark.range(100).count()")
        assert out.status == OutputStatus.OK and out.text.endswith(": Long = 100\n"), out
        session.run('val df = Seq((1, "one"), (2, "two")).toDF("n", "word")')
        frame = session.download("df")
        assert frame.to_dict("records") == [{"n": 1, "word": "one"}, {"n": 2, "word": "two"}]
        with pytest.raises(SparkRuntimeError) as failure:
            session.run("1 / 0")
        assert failure.value.ename == "Error"
        assert failure.value.evalue == "java.lang.ArithmeticException: / by zero"
        pid = c.repl_pid(sid)
    assert c.server.get(f"/sessions/{sid}").status_code == 404
    assert not h.wait_gone([pid], 30)
