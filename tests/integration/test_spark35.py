"""The previous Spark line: the REPL driver and its Scala interpreter on pip pyspark 3.5 (Scala
2.12), in .venv-spark35 (tests/requirements-spark35.txt), as a site whose supervisor's `python`
has Spark 3.5 runs them. One shared session: Scala (outputs, a case class in tasks, an error),
Python and SQL on one SparkSession.

The venv is built by scripts/install-deps when LIVY_CLIENT_TESTS=1 or CI is set, as the other
tests that need a venv of their own; without it and not asked for, this test is skipped with the
reason printed. Asked for and absent, it fails.
"""

from __future__ import annotations

import pytest

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server, start_server
from test_batch_clients import clients_required

SPARK35_VENV = h.ROOT / ".venv-spark35"
SPARK35_PYTHON = SPARK35_VENV / "bin" / "python"
SPARK35_REQUIREMENTS = h.ROOT / "tests" / "requirements-spark35.txt"


@pytest.fixture(scope="module")
def spark35(work_dir, pg, spark_env):
    if not SPARK35_PYTHON.exists():
        how = ("scripts/run-tests --clients, or LIVY_CLIENT_TESTS=1 scripts/install-deps, builds it "
               f"from {SPARK35_REQUIREMENTS.relative_to(h.ROOT)}")
        if clients_required():
            pytest.fail(f"the client tests were asked for but {SPARK35_VENV} is absent: {how}",
                        pytrace=False)
        pytest.skip(f"Spark 3.5 smoke test not run: {SPARK35_VENV} is absent ({how})")
    factory, server = start_server(work_dir, pg, "spark35", "spark35", "event",
                                   {"check_interval": "200ms", "python": SPARK35_PYTHON})
    yield Client(server, pg, "spark35")
    finish_server(factory)


def text(c: Client, sid: int, code: str, kind: str) -> str:
    st = c.run(sid, code, kind=kind, timeout=180)
    assert st["output"]["status"] == "ok", st
    return st["output"]["data"]["text/plain"]


def test_scala_python_and_sql_on_spark_3_5(spark35):
    c = spark35
    sid = c.create(kind="shared", conf=FAST_CONF)["id"]
    c.wait_session(sid, "idle")
    pinned = SPARK35_REQUIREMENTS.read_text().split("pyspark==")[1].split()[0]
    assert text(c, sid, "spark.version", "pyspark") == repr(pinned)
    assert text(c, sid, "1 + 1", "spark") == "res0: Int = 2\n"
    assert text(c, sid, "util.Properties.versionNumberString", "spark").startswith(
        'res1: String = 2.12.')
    assert text(c, sid, "case class Word(text: String, n: Int)", "spark") == "defined class Word\n"
    assert text(c, sid, 'sc.parallelize(1 to 3, 3).map(i => Word("w" + i, i)).toDS()'
                        '.createOrReplaceTempView("words")', "spark") == ""
    st = c.run(sid, "SELECT text FROM words WHERE n > 1 ORDER BY n", kind="sql")
    assert st["output"]["data"]["application/json"]["data"] == [["w2"], ["w3"]], st
    assert text(c, sid, "spark.table('words').count()", "pyspark") == "3"
    st = c.run(sid, "undefinedName", kind="spark")
    assert st["output"]["status"] == "error" and st["output"]["ename"] == "Error", st
    assert st["output"]["evalue"].endswith("error: not found: value undefinedName"), st
    assert c.server.delete(f"/sessions/{sid}").status_code == 200
