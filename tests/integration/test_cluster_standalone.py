"""Sessions and batches on a Spark standalone cluster, through httpd, as a Livy client sees them.

The module starts a master and a worker from pip pyspark (spark_cluster.py; RPC authenticated
with the cluster's secret in its SPARK_CONF_DIR) and two supervisors of distinct host ids on one
database, both with `spark_master spark://...`, the cluster's `spark_conf_dir` and `max_sessions 1`: the managed supervisor of
node A (whose httpd the client talks to) and the standalone supervisor of node B. The drivers
stay with the supervisors (client deploy mode); executors run on the worker.

Spark starts are what this file costs, so it keeps them few: a pyspark session (`py`) and a sql
session (`sq`) start together, one on each supervisor, and carry the checks in file order; then
`sq` is deleted, a batch runs in the room it leaves, and a session that times out (no heartbeat)
takes the room the batch leaves; last, scripts/livy-local fronts the same cluster. What a client cannot see comes from the cluster (the master's
and worker's JSON pages), /proc (executor JVMs and their Python workers) and the sessions table
(which supervisor claimed a session).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
import requests

import livy_harness as h
import spark_cluster
from livy_client import JAVA_FAST, SPARK_START_TIMEOUT, Client, finish_server

DBNAME = "standalone"
HOSTS = ("sa-a", "sa-b")
# One executor of one core and 512 MiB per application: the worker (4 slots, 4 GiB) holds every
# application this file runs at once.
EXECUTOR_CONF = {
    "spark.driver.extraJavaOptions": JAVA_FAST,
    "spark.executor.extraJavaOptions": JAVA_FAST,
    "spark.executor.memory": "512m",
    "spark.executor.cores": "1",
    "spark.cores.max": "1",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
}
# The owner tries to bring a secret of its own and turn authentication off; the server's
# settings and the cluster's secret win (or the executors could not register at all).
PY_CONF = {**EXECUTOR_CONF, "spark.ui.enabled": "true",
           "spark.authenticate": "false", "spark.authenticate.secret": "chosen-by-the-user"}
APP_ID = re.compile(r"^app-\d{14}-\d{4}$")
HEARTBEAT_TIMEOUT = 5

PI = h.pi_batch('cluster-pi', 200000)


@pytest.fixture(scope="module")
def cluster(work_dir, spark_env):
    c = spark_cluster.StandaloneCluster()
    try:
        c.start()
    except (h.HarnessError, AssertionError) as e:
        c.stop()
        pytest.fail(f"the Spark standalone cluster did not start: {e}\n{c.log_tail()}", pytrace=False)
    yield c
    problems = c.stop()
    c.destroy()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def batch_dir(spark_env):
    d = h.batch_files_dir("livy-cluster-")
    yield d
    if not os.environ.get("LIVY_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def nodes(work_dir, pg, cluster, batch_dir):
    """Node A (httpd with its managed supervisor) and node B (httpd with a standalone
    supervisor), one database, one cluster; yields a Client on node A."""
    pg.create_database(DBNAME)
    factory = h.ServerFactory(work_dir, pg, DBNAME)
    try:
        for host, supervisor in zip(HOSTS, ("managed", "external")):
            server = factory(mpm="event", supervisor=supervisor, dbname=DBNAME,
                             extra_conf=f'LivyBatchAllowedPaths "{batch_dir}"\n',
                             supervisor_conf={"host_id": host, "max_sessions": 1,
                                              "spark_master": cluster.url,
                                              "spark_conf_dir": cluster.conf_dir,
                                              "check_interval": "200ms", "stop_grace": "4s"})
            if supervisor == "external":
                server.start_external_supervisor()
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    yield Client(factory.servers[0], pg, DBNAME)
    finish_server(factory)


@pytest.fixture(autouse=True)
def checked_error_log(nodes):
    """Each test fails when node A's error log gained unexpected lines while it ran."""
    yield from h.error_log_checked(nodes.server)


@pytest.fixture(scope="module")
def sessions(nodes, cluster):
    """`py` (pyspark) and `sq` (sql), created together: each supervisor claims one."""
    py = nodes.create(kind="pyspark", name="on-the-cluster", conf=PY_CONF)["id"]
    sq = nodes.create(kind="sql", conf=EXECUTOR_CONF)["id"]
    out = {"py": py, "sq": sq}
    for name in ("py", "sq"):
        out[f"{name}_app"] = nodes.wait_session(out[name], "idle")["appId"]
    return out


def owner_host(c: Client, sid: int) -> str | None:
    return c.db_value("SELECT v.host FROM sessions s JOIN supervisors v ON v.id = s.supervisor_id "
                      f"WHERE s.id = {int(sid)}")


def task_processes(c: Client, sid: int) -> dict:
    """Runs a four-task job in the session; each task reports its pid and its parent's (host
    pids: tasks run in the executors' Python workers, outside the REPL's namespaces)."""
    code = ("import json, os\n"
            "pids = sc.parallelize(range(4), 4).map(lambda _: (os.getpid(), os.getppid())).collect()\n"
            "print(json.dumps({'tasks': pids, 'master': sc.master}))")
    return json.loads(c.text(sid, code))


# ------------------------------------------------------------------ the tests, in file order


def test_pyspark_session_runs_its_jobs_on_the_worker(nodes, cluster, sessions):
    c, sid, app_id = nodes, sessions["py"], sessions["py_app"]
    assert app_id and APP_ID.match(app_id), app_id
    app = cluster.wait_app_running(app_id)
    assert app["name"] == "on-the-cluster" and app["cores"] == 1, app
    executors = cluster.running_executors(app_id)
    assert len(executors) == 1 and executors[0]["memory"] == 512, executors
    jvms = cluster.executor_pids(app_id)
    assert len(jvms) == 1, f"executor JVMs of {app_id} on this host: {jvms}"
    out = task_processes(c, sid)
    assert out["master"] == cluster.url, out
    below_executor = set(h.descendants(jvms[0]))
    task_pids = {pid for pid, _ in out["tasks"]}
    assert task_pids and task_pids <= below_executor, (
        f"tasks ran in {sorted(task_pids)}, not all below the executor JVM {jvms[0]} "
        f"({sorted(below_executor)})")
    repl = c.repl_pid(sid)
    assert not task_pids & ({repl} | set(h.descendants(repl))), "a task ran in the driver's process tree"


def test_sql_session_runs_its_jobs_on_the_worker(nodes, cluster, sessions):
    c, sid, app_id = nodes, sessions["sq"], sessions["sq_app"]
    assert app_id and APP_ID.match(app_id) and app_id != sessions["py_app"], (app_id, sessions)
    cluster.wait_app_running(app_id)
    st = c.run(sid, "SELECT count(*) AS n, sum(id) AS s FROM range(1000)", kind="sql")
    assert st["output"]["status"] == "ok", st
    table = st["output"]["data"]["application/json"]
    assert table["data"] == [[1000, 499500]], table
    assert [f["name"] for f in table["schema"]["fields"]] == ["n", "s"], table


def test_two_supervisors_run_their_sessions_on_one_cluster(nodes, cluster, sessions):
    hosts = {owner_host(nodes, sessions[n]) for n in ("py", "sq")}
    assert hosts == set(HOSTS), f"py and sq were claimed by {hosts}, not one each by {HOSTS}"
    active = {a["id"] for a in cluster.master()["activeapps"]}
    assert {sessions["py_app"], sessions["sq_app"]} <= active, active
    assert len(cluster.running_executors()) == 2, cluster.worker()["executors"]


def test_the_cluster_secret_wins_over_the_session_conf(nodes, sessions):
    code = ("conf = sc.getConf()\n"
            "print(conf.get('spark.authenticate'), "
            "conf.get('spark.authenticate.secret') == 'chosen-by-the-user')")
    assert nodes.text(sessions["py"], code) == "true False"


def test_driver_listens_for_executors_and_keeps_its_ui_on_loopback(nodes, cluster, sessions):
    c, sid = nodes, sessions["py"]
    socks = h.listening_sockets(h.session_members(c.repl_pid(sid)))
    bound = {port: addr for _, addr, port in socks}
    ports = json.loads(c.text(sid, "import json\nconf = sc.getConf()\nprint(json.dumps("
                                    "[conf.get('spark.driver.port'), conf.get('spark.driver.host')]))"))
    rpc_port, driver_host = int(ports[0]), ports[1]
    assert driver_host == cluster.host, ports
    assert bound.get(rpc_port) == cluster.host, (rpc_port, socks)
    ui_url = c.db_value(f"SELECT spark_ui_url FROM sessions WHERE id = {sid}")
    m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/?", ui_url or "")
    assert m and bound.get(int(m.group(1))) == "127.0.0.1", (ui_url, socks)
    wildcard = [s for s in socks if s[1] in ("0.0.0.0", "::")]
    assert not wildcard, f"listening on every interface: {wildcard}"
    r = c.server.get(f"/sessions/{sid}/ui/jobs/")
    assert r.status_code == 200 and "Spark Jobs" in r.text, (r.status_code, r.text[:300])


def test_cancel_of_a_cluster_job(nodes, cluster, sessions):
    c, sid, app_id = nodes, sessions["py"], sessions["py_app"]
    # The task names its pid in the executor's stderr (a file in the worker's directory).
    st = c.submit(sid, "import os, sys, time\n"
                       "def sleeper(v):\n"
                       "    print('cancel-me', os.getpid(), file=sys.stderr, flush=True)\n"
                       "    time.sleep(600)\n"
                       "    return v\n"
                       "sc.parallelize(range(1), 1).map(sleeper).count()")
    c.wait_statement(sid, st["id"], "running")
    task_pid = cluster.wait_task_pid(app_id, "cancel-me")
    jvm = cluster.executor_pids(app_id)[0]
    assert task_pid in h.descendants(jvm), f"the sleeping task {task_pid} is not below the executor {jvm}"
    c.cancel(sid, st["id"])
    done = c.wait_statement(sid, st["id"], "cancelled", timeout=60)
    assert done["output"] is None or done["output"]["status"] == "error", done
    assert not h.wait_gone([task_pid], 30), f"the cancelled task's Python worker {task_pid} still runs"
    assert c.text(sid, "print(sc.parallelize(range(10), 2).sum())") == "45"


def test_delete_releases_the_sessions_executors(nodes, cluster, sessions):
    c, sid, app_id = nodes, sessions["sq"], sessions["sq_app"]
    jvms = cluster.executor_pids(app_id)
    assert jvms, f"no executor JVM of {app_id} before DELETE"
    r = c.server.delete(f"/sessions/{sid}")
    assert r.status_code == 200 and r.json() == {"msg": "deleted"}, (r.status_code, r.text)
    cluster.wait_executors_gone(app_id)
    assert cluster.app(app_id)["state"] == "FINISHED", cluster.app(app_id)
    # The other session's executor is untouched.
    assert cluster.running_executors(sessions["py_app"]), cluster.worker()["executors"]


def test_batch_runs_on_the_cluster(nodes, cluster, sessions, batch_dir):
    c = nodes
    pi = h.write_batch_file(batch_dir, "pi.py", PI)
    r = c.server.post("/batches", json={"file": str(pi), "conf": EXECUTOR_CONF})
    assert r.status_code == 201, (r.status_code, r.text)
    bid = r.json()["id"]
    deadline = time.monotonic() + h.BATCH_TIMEOUT
    while True:
        b = c.server.get(f"/batches/{bid}").json()
        if b["state"] in h.BATCH_ENDED or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    log = c.server.get(f"/batches/{bid}/log?from=0&size=-1").json()["log"]
    assert b["state"] == "success", (b, "\n".join(log[-40:]))
    assert any(re.match(r"Pi is roughly 3\.\d+$", line) for line in log), log[-40:]
    app_id = b["appId"]
    assert app_id and APP_ID.match(app_id), b
    app = cluster.app(app_id)
    assert app and app["name"] == "cluster-pi" and app["state"] == "FINISHED", app
    cluster.wait_executors_gone(app_id)


def test_session_that_times_out_releases_its_executors(nodes, cluster, sessions):
    c = nodes
    sid = c.create(kind="pyspark", heartbeatTimeoutInSecond=HEARTBEAT_TIMEOUT, conf=EXECUTOR_CONF)["id"]
    s = c.wait_session(sid, "idle")  # GET /sessions/{id} heartbeats; the listing does not
    app_id = s["appId"]
    cluster.wait_app_running(app_id)
    s = c.wait_listed_state(sid, {"dead", "killed"}, timeout=HEARTBEAT_TIMEOUT + 60)
    cluster.wait_executors_gone(app_id)
    assert cluster.running_executors(sessions["py_app"]), "the other session lost its executor"


def test_last_delete_leaves_no_executor_on_the_worker(nodes, cluster, sessions):
    c, sid = nodes, sessions["py"]
    r = c.server.delete(f"/sessions/{sid}")
    assert r.status_code == 200, (r.status_code, r.text)
    cluster.wait_executors_gone(sessions["py_app"])
    assert not cluster.running_executors() and not cluster.executor_pids(), cluster.worker()["executors"]
    assert not cluster.master()["activeapps"], cluster.master()["activeapps"]


def test_livy_local_fronts_the_cluster(cluster, work_dir):
    """README's recipe: scripts/livy-local start with LIVY_SPARK_MASTER and LIVY_SPARK_CONF_DIR
    serves sessions whose jobs run on the cluster."""
    from test_local_server import LocalInstance

    inst = LocalInstance(work_dir, "local-standalone")
    inst.env.update(LIVY_SPARK_MASTER=cluster.url, LIVY_SPARK_CONF_DIR=str(cluster.conf_dir))
    try:
        r = inst.run("start")
        assert r.returncode == 0, f"livy-local start failed:\n{r.stdout}\n{r.stderr}"
        http = requests.Session()
        r = http.post(inst.url + "/sessions", json={"kind": "pyspark", "conf": EXECUTOR_CONF}, timeout=30)
        assert r.status_code == 201, (r.status_code, r.text)
        sid = r.json()["id"]
        s = h.wait_for(lambda: (lambda s: s if s["state"] in {"idle", "dead", "error"} else None)(
            http.get(f"{inst.url}/sessions/{sid}", timeout=30).json()), SPARK_START_TIMEOUT,
            "the livy-local session to start", interval=0.5)
        assert s["state"] == "idle", (s, http.get(f"{inst.url}/sessions/{sid}/log?size=40", timeout=30).text)
        assert APP_ID.match(s["appId"] or ""), s
        cluster.wait_app_running(s["appId"])
        r = http.post(f"{inst.url}/sessions/{sid}/statements",
                      json={"code": "print(sc.master, sc.parallelize(range(100), 2).sum())"}, timeout=30)
        assert r.status_code == 201, r.text
        stid = r.json()["id"]
        st = h.wait_for(lambda: (lambda st: st if st["state"] == "available" else None)(
            http.get(f"{inst.url}/sessions/{sid}/statements/{stid}", timeout=30).json()), 120,
            "the statement's result", interval=0.2)
        assert st["output"]["data"]["text/plain"] == f"{cluster.url} 4950", st
        assert http.delete(f"{inst.url}/sessions/{sid}", timeout=30).status_code == 200
        cluster.wait_executors_gone(s["appId"])
    finally:
        stop = inst.run("stop", timeout=120)
        h.terminate(inst.processes())
    assert stop.returncode == 0, stop.stdout + stop.stderr
