"""A real Livy client against mod_livy: pylivy (PyPI `livy`, 0.8) creates a PySpark session,
runs a Spark job, reads a %json result, downloads a DataFrame into pandas and closes the session,
all through its own HTTP calls (GET /version first, its own polling)."""

from __future__ import annotations

import pandas
import pytest
from livy import LivySession, SessionKind, SessionState, SparkRuntimeError
from livy.models import OutputStatus

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server, start_server


@pytest.fixture(scope="module")
def pylivy_server(work_dir, pg, spark_env):
    factory, server = start_server(work_dir, pg, "pylivy", "pylivy", "event", {"check_interval": "200ms"})
    yield Client(server, pg, "pylivy")
    finish_server(factory)


def test_pylivy_session_runs_reads_json_downloads_and_closes(pylivy_server):
    c = pylivy_server
    with LivySession.create(c.server.url, kind=SessionKind.PYSPARK, name="pylivy",
                            spark_conf=FAST_CONF, echo=False) as session:
        assert session.state == SessionState.IDLE
        sid = session.session_id
        members = h.session_members(c.repl_pid(sid))

        out = session.run("spark.range(100).count()")
        assert out.status == OutputStatus.OK and out.text == "100"

        session.run("summary = {'rows': 100, 'names': ['a', 'b'], 'ok': True}")
        out = session.run("%json summary")
        assert out.json == {"rows": 100, "names": ["a", "b"], "ok": True}

        session.run("df = spark.createDataFrame([(1, 'one', 1.5), (2, 'two', 2.5), (3, 'three', 3.5)],"
                    " ['n', 'word', 'x'])")
        frame = session.download("df")
        assert isinstance(frame, pandas.DataFrame)
        assert list(frame.columns) == ["n", "word", "x"]
        assert frame.to_dict("records") == [{"n": 1, "word": "one", "x": 1.5},
                                            {"n": 2, "word": "two", "x": 2.5},
                                            {"n": 3, "word": "three", "x": 3.5}]

        # A failing statement raises pylivy's SparkRuntimeError with Livy's error fields.
        with pytest.raises(SparkRuntimeError) as failure:
            session.run("1 / 0")
        assert failure.value.ename == "ZeroDivisionError"
        assert failure.value.evalue == "division by zero"
    # Leaving the block closed the session: DELETE, then gone for clients and processes.
    assert c.server.get(f"/sessions/{sid}").status_code == 404
    assert not h.wait_gone(members, 20), "the REPL's processes outlived DELETE"
