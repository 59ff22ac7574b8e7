"""Spark on YARN, through httpd, as a Livy client sees it: a standalone livy-supervisor with
`spark_master = yarn` runs its REPLs and batches in client deploy mode (the driver on this host,
executors in containers) on a one-node YARN cluster the tests start (yarn_cluster.py: Hadoop's
MiniYARNCluster, at the version pip's pyspark bundles).

What YARN says is read from its REST APIs: the ResourceManager's (an application's state, its
attempts and their containers) and the NodeManager's (the containers it runs).

Spark on YARN is slow to start (an application master, then an executor, each a JVM in a
container), so the file keeps starts few and overlapping: one shared session carries the statement
tests and is deleted by the last test; the two batches (one that succeeds, one that the DELETE test
kills) are posted as soon as the session is up and run while the statement tests do.

The cluster's jars are fetched by scripts/install-deps only when the cluster tests are asked for
(`scripts/run-tests --cluster`, LIVY_CLUSTER_TESTS=1, or CI); otherwise this file is skipped,
saying why. Asked for, anything missing fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from types import SimpleNamespace

import pytest
import requests

import livy_harness as h
import yarn_cluster
from livy_client import JAVA_FAST, Client, assert_processes_gone

YARN_START_TIMEOUT = 300  # an application master and an executor, JVMs in containers, on two busy cores
SESSION_CONF = {"spark.driver.extraJavaOptions": JAVA_FAST, "spark.sql.shuffle.partitions": "2"}
BATCH_CONF = {"spark.driver.extraJavaOptions": JAVA_FAST, "spark.ui.enabled": "false"}
APP_ENDED = {"FINISHED", "KILLED", "FAILED"}

PI = h.pi_batch('YarnPi', 100000)

LONG = """\
    # A job that never ends on its own: one task that sleeps in an executor's Python worker.
    import time

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("YarnLong").getOrCreate()
    print("long job: started", flush=True)
    spark.sparkContext.parallelize([0], 1).map(lambda v: time.sleep(600) or v).count()
    print("long job: finished, which it never should", flush=True)
    """

# Where the tasks of a job ran: each task reports the YARN container it is in (the NodeManager
# sets CONTAINER_ID in every container's environment; the driver has none), and the driver says
# which executors it has.
WHERE = """\
import json, os, socket

def _where(_):
    return (os.environ.get("CONTAINER_ID"), socket.gethostname())

placed = sorted(set(sc.parallelize(range(8), 4).map(_where).collect()), key=str)
executors = sc._jvm.scala.jdk.javaapi.CollectionConverters.asJava(sc._jsc.sc().getExecutorIds())
print(json.dumps({"driver_container": os.environ.get("CONTAINER_ID"),
                  "task_containers": sorted({str(c) for c, _ in placed}),
                  "task_hosts": sorted({host for _, host in placed}),
                  "executors": sorted(str(e) for e in executors)}))
"""


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session", autouse=True)
def cluster_tests_asked_for():
    """Not asked for, every test here is skipped, saying why (before any other fixture runs:
    autouse, and of the widest scope)."""
    if not yarn_cluster.cluster_tests_required():
        pytest.skip("YARN cluster tests not run: not asked for (scripts/run-tests --cluster, or "
                    "LIVY_CLUSTER_TESTS=1, which also makes scripts/install-deps fetch the cluster's "
                    f"jars into {yarn_cluster.CLUSTER_JARS.relative_to(h.ROOT)}/)")


@pytest.fixture(scope="module")
def cluster(spark_env):
    """The one-node YARN cluster (fails, never skips, when it cannot start)."""
    yield from yarn_cluster.cluster_fixture(spark_env)


@pytest.fixture(scope="module")
def files(spark_env):
    """The batch files, in the directory the server allows (under /var/tmp, which batches see)."""
    d = h.batch_files_dir("livy-yarn-batches-")
    # Where tasks leave a mark that they run (containers run as the NodeManager's account).
    marks = d / "marks"
    marks.mkdir()
    marks.chmod(0o1777)
    yield SimpleNamespace(dir=d, marks=marks, pi=h.write_batch_file(d, "pi.py", PI),
                          long=h.write_batch_file(d, "long.py", LONG))
    if not os.environ.get("LIVY_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def yarn(work_dir, pg, cluster, files):
    """A server whose standalone supervisor runs Spark on the cluster; a session client and a
    batch client over it."""
    for server in yarn_cluster.yarn_module_server(
            work_dir, pg, "yarn", cluster, files.dir,
            supervisor_conf={"check_interval": "200ms", "stop_grace": "10s", "start_timeout": "10m"}):
        yield SimpleNamespace(server=server, sessions=Client(server, pg, "yarn"),
                              batches=h.BatchClient(server, pg, "yarn"))


@pytest.fixture(scope="module")
def session(yarn):
    """The shared pyspark session, up (idle), with its REPL's pid."""
    c = yarn.sessions
    sid = c.create(kind="pyspark", conf=SESSION_CONF)["id"]
    s = c.wait_session(sid, "idle", timeout=YARN_START_TIMEOUT)
    return {"id": sid, "idle": s, "repl_pid": c.repl_pid(sid)}


@pytest.fixture(scope="module")
def batches(yarn, files, session):
    """The two batches, posted once the session is up so that they run beside the statement tests."""
    b = yarn.batches
    ids = {"pi": b.create(file=str(files.pi), name="yarn-pi", conf=BATCH_CONF)["id"],
           "long": b.create(file=str(files.long), name="yarn-long", conf=BATCH_CONF)["id"]}
    yield ids
    # A partial run (-k, -x) leaves the long one running: DELETE it as a client would, so that
    # the server's check for batch processes left behind speaks of real leaks only.
    for bid in ids.values():
        if not b.row(bid)["ended"]:
            b.server.delete(f"/batches/{bid}")
    h.wait_for(lambda: all(b.row(bid)["ended"] for bid in ids.values()), 60,
               "the batches to end after DELETE")


def wait_batch_app_id(b: h.BatchClient, bid: int) -> str:
    """The batch's appId once it is YARN's (spark-submit logs it when YARN accepted the
    application)."""
    return yarn_cluster.wait_saying(
        lambda: (a := b.batch(bid)["appId"]) and yarn_cluster.APP_ID.fullmatch(a) and a,
        YARN_START_TIMEOUT, f"batch {bid}'s YARN application id", lambda: b.diagnose(bid))


# ------------------------------------------------------------------ the session


def test_session_app_id_is_its_running_yarn_application(yarn, cluster, session, batches):
    s = session["idle"]
    app_id = s["appId"]
    assert yarn_cluster.APP_ID.fullmatch(app_id or ""), s
    assert yarn.sessions.session(session["id"])["appId"] == app_id
    assert cluster.app_state(app_id) == "RUNNING"
    attempts = cluster.app_attempts(app_id)
    assert [a["appAttemptState"] for a in attempts] == ["RUNNING"], attempts
    # The application master and one executor, each in a running container of its own (the
    # session may be up before its executor is: Spark waits for executors only so long).
    held = yarn_cluster.wait_saying(
        lambda: (cs := cluster.rm_containers(app_id)) and len(cs) >= 2
        and all(c["containerState"] == "RUNNING" for c in cs) and cs, 120,
        f"two running containers of {app_id}",
        lambda: f"the ResourceManager holds {cluster.rm_containers(app_id)}")
    yarn_cluster.wait_saying(
        lambda: {c["id"] for c in cluster.nm_containers(app_id)} == {c["containerId"] for c in held}, 60,
        f"the NodeManager to run {[c['containerId'] for c in held]}",
        lambda: f"it runs {[c['id'] for c in cluster.nm_containers(app_id)]}")


def test_a_job_runs_in_the_executors_containers(yarn, cluster, session):
    sid = session["id"]
    app_id = session["idle"]["appId"]
    where = json.loads(yarn.sessions.text(sid, WHERE, timeout=180))
    # The driver runs in the REPL, outside YARN; the tasks ran in the executors' containers.
    assert where["driver_container"] is None, where
    assert where["executors"] and "driver" not in where["executors"], where
    containers = {c["id"] for c in cluster.nm_containers(app_id)}
    assert where["task_containers"] and set(where["task_containers"]) <= containers, (where, containers)
    am = [c for c in containers if c.endswith("_000001")]
    assert am and not set(am) & set(where["task_containers"]), (where, containers)
    assert where["task_hosts"], where


def test_session_ui_is_served_by_the_resourcemanagers_proxy(yarn, cluster, session):
    app_id = session["idle"]["appId"]
    r = yarn.server.get(f"/sessions/{session['id']}/ui/jobs/", allow_redirects=False)
    assert r.status_code in (302, 303, 307), (r.status_code, r.text[:300])
    location = r.headers["Location"]
    assert app_id in location and "/proxy/" in location, location
    page = requests.get(f"http://{cluster.rm_web}/proxy/{app_id}/jobs/", timeout=60)
    assert page.status_code == 200 and "Spark Jobs" in page.text, (page.status_code, page.text[:300])


def test_sql_statement_runs_on_the_cluster(yarn, session):
    sid = session["id"]
    out = yarn.sessions.run(sid, "SELECT count(*) AS n, sum(id) AS total FROM range(0, 1000, 1, 4)",
                            kind="sql", timeout=180)["output"]
    assert out["status"] == "ok", out
    body = out["data"]["application/json"]
    assert [(f["name"], f["type"]) for f in body["schema"]["fields"]] == [("n", "long"), ("total", "long")]
    assert body["data"] == [[1000, 499500]]


def test_cancel_a_long_cluster_job_then_the_next_statement_runs(yarn, cluster, files, session):
    c = yarn.sessions
    sid = session["id"]
    c.run(sid, "kept = 'kept across a cancel'")
    code = ("import os, time\n"
            "def _sleep(v):\n"
            f"    open(os.path.join({str(files.marks)!r}, 'task-%d' % v), 'w').close()\n"
            "    time.sleep(600)\n"
            "    return v\n"
            "sc.parallelize(range(2), 2).map(_sleep).count()")
    st = c.submit(sid, code)
    seen = []
    c.wait_statement(sid, st["id"], "running", timeout=60, seen=seen)
    # Cancelled while a task sleeps in the executor's container.
    yarn_cluster.wait_saying(lambda: list(files.marks.glob("task-*")), 120,
                             f"a task of statement {st['id']} to run", lambda: c.diagnose(sid))
    c.cancel(sid, st["id"])
    final = c.wait_statement(sid, st["id"], ("cancelled", "available"), timeout=120, seen=seen)
    assert final["state"] == "cancelled", final
    assert final["output"] is None, final
    c.wait_session(sid, "idle", timeout=60)
    assert c.text(sid, "sc.parallelize(range(10), 2).sum()", timeout=180) == "45"
    assert c.text(sid, "kept") == "'kept across a cancel'"
    # The cancel ended the job, not the application.
    assert cluster.app_state(session["idle"]["appId"]) == "RUNNING"


# ------------------------------------------------------------------ batches


def test_batch_runs_on_yarn_to_success(yarn, cluster, batches):
    b = yarn.batches
    bid = batches["pi"]
    app_id = wait_batch_app_id(b, bid)
    b.wait(bid, "success", timeout=YARN_START_TIMEOUT)
    view = b.batch(bid)
    assert view["appId"] == app_id, view
    log = b.log(bid)
    assert any(re.fullmatch(r"Pi is roughly 3\.\d+", line) for line in log), log[-30:]
    assert cluster.wait_app_state(app_id, APP_ENDED) == "FINISHED"
    cluster.wait_containers_released(app_id)


def test_delete_of_a_running_yarn_batch_ends_its_application(yarn, cluster, files, batches):
    b = yarn.batches
    bid = batches["long"]
    app_id = wait_batch_app_id(b, bid)
    b.wait(bid, "running")
    b.wait_log_line(bid, r"^long job: started$")
    cluster.wait_app_state(app_id, "RUNNING")
    # Its executor holds the sleeping task: the application master and the executor run.
    yarn_cluster.wait_saying(lambda: len(cluster.nm_containers(app_id)) >= 2, 120,
                             f"{app_id}'s executor container", lambda: b.diagnose(bid))
    procs = h.batch_processes(files.long)
    assert procs, "no process of the long batch"

    r = b.server.delete(f"/batches/{bid}")
    assert r.status_code == 200 and r.json() == {"msg": "deleted"}, (r.status_code, r.text)
    assert b.server.get(f"/batches/{bid}").status_code == 404
    yarn_cluster.wait_saying(lambda: b.row(bid)["state"] == "killed", 60,
                             f"batch {bid}'s row to say killed", lambda: f"it says {b.row(bid)}")
    assert cluster.wait_app_state(app_id, APP_ENDED) in APP_ENDED
    cluster.wait_containers_released(app_id)
    assert_processes_gone(procs, 30, f"batch {bid}'s processes")


# ------------------------------------------------------------------ the session's end (last)


def test_delete_session_ends_its_application_and_releases_its_containers(yarn, cluster, session):
    c = yarn.sessions
    sid = session["id"]
    app_id = session["idle"]["appId"]
    members = h.session_members(session["repl_pid"])
    assert members, "the session's REPL is not running"
    assert cluster.app_state(app_id) == "RUNNING"
    r = yarn.server.delete(f"/sessions/{sid}")
    assert r.status_code == 200 and r.json() == {"msg": "deleted"}, (r.status_code, r.text)
    assert cluster.wait_app_state(app_id, APP_ENDED) in APP_ENDED
    cluster.wait_containers_released(app_id)
    assert_processes_gone(members, 60, f"session {sid}'s REPL")
