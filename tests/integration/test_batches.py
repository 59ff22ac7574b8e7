"""Batches end to end (POST /batches and friends), through httpd, PostgreSQL and a standalone
livy-supervisor running real spark-submit children, as a Livy client sees them.

spark-submit runs are what this file costs (5-10 s each on two cores), so it keeps them few and
overlaps them: four batches (a PySpark pi estimate, a Java jar built here with javac, a Python file
that raises, a remote hdfs: file) are posted together at the start and checked by the tests that
follow; the DELETE test and the supervisor-outage scenario start their own. The batch files live
in a directory of their own under /var/tmp (every batch gets a private /tmp, like a REPL), which
is the server's LivyBatchAllowedPaths. Everything is read over HTTP except what a client cannot
see: a batch's database row (its state after DELETE, its process group) and /proc.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import livy_harness as h
from livy_client import FAST_CONF

JAR_CLASS = "BatchCount"
# Passed as argv, never through a shell: the space, quotes, $ ; and * arrive as written.
JAR_ARGS = ["1000", "two words", "'q' $HOME;*"]
TICKS = 15  # seconds the batch that outlives its supervisor runs for
HDFS_FILE = "hdfs:///batches/pi.py"  # no namenode in the URI, none configured: spark-submit fails

PI = """\
    # Estimates pi with Spark (the classic example): the batch's stdout carries the answer.
    import sys
    from operator import add
    from random import random

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("PythonPi").getOrCreate()
    partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    n = 100000 * partitions


    def inside(_):
        x = random() * 2 - 1
        y = random() * 2 - 1
        return 1 if x * x + y * y <= 1 else 0


    count = spark.sparkContext.parallelize(range(1, n + 1), partitions).map(inside).reduce(add)
    print("Pi is roughly %f" % (4.0 * count / n), flush=True)
    spark.stop()
    """

FAIL = """\
    # A batch that fails: its traceback must reach the batch's log, and the batch end dead.
    def check(value):
        raise ValueError(f"the batch failed on purpose ({value})")


    check(42)
    """

LONG = """\
    # A long Spark job: a task that sleeps, so that a Python worker runs beside the JVM.
    import time

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("long-job").getOrCreate()
    print("long job: started", flush=True)
    spark.sparkContext.parallelize([0], 1).map(lambda v: time.sleep(600) or v).count()
    print("long job: finished, which it never should", flush=True)
    """

TICKER = """\
    # Ticks once a second for argv[1] seconds, then prints its marker and exits 0.
    import sys
    import time

    for i in range(int(sys.argv[1])):
        print(f"tick {i}", flush=True)
        time.sleep(1)
    print("ticker: done", flush=True)
    """

SLEEPER = """\
    # Sleeps for an hour: the test kills it.
    import time

    print("sleeper: started", flush=True)
    time.sleep(3600)
    """

JAVA = """\
    // A Spark application in Java: prints its arguments and a count.
    import org.apache.spark.sql.SparkSession;

    public class BatchCount {
        public static void main(String[] args) {
            for (int i = 0; i < args.length; i++)
                System.out.println("BatchCount arg[" + i + "]=<" + args[i] + ">");
            SparkSession spark = SparkSession.builder().appName("BatchCount").getOrCreate();
            long n = spark.range(0, Long.parseLong(args[0])).filter("id % 3 = 0").count();
            System.out.println("BatchCount count=" + n);
            spark.stop();
        }
    }
    """


def build_jar(directory: Path) -> Path:
    """Compiles JAVA against pyspark's jars with javac and packs it with jar."""
    for tool in ("javac", "jar"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: the jar batch needs a JDK (run scripts/install-deps)",
                        pytrace=False)
    src = directory / "src"
    classes = directory / "classes"
    src.mkdir()
    classes.mkdir()
    h.write_batch_file(src, f"{JAR_CLASS}.java", JAVA)
    jars = h.pyspark_dir() / "jars"
    for cmd in (["javac", "-cp", f"{jars}/*", "-d", classes, src / f"{JAR_CLASS}.java"],
                ["jar", "cf", directory / "batch-count.jar", "-C", classes, "."]):
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"{' '.join(map(str, cmd))}:\n{r.stdout}{r.stderr}"
    jar = directory / "batch-count.jar"
    jar.chmod(0o644)
    return jar


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def files(spark_env):
    """The batch files, in the directory the server allows."""
    d = h.batch_files_dir()
    ns = SimpleNamespace(dir=d, pi=h.write_batch_file(d, "pi.py", PI),
                         fail=h.write_batch_file(d, "fail.py", FAIL),
                         long=h.write_batch_file(d, "long.py", LONG),
                         ticker=h.write_batch_file(d, "ticker.py", TICKER),
                         sleeper=h.write_batch_file(d, "sleeper.py", SLEEPER),
                         never=h.write_batch_file(d, "never.py", SLEEPER),
                         jar=build_jar(d))
    yield ns
    if not os.environ.get("LIVY_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def bt(work_dir, pg, files):
    """A server with a standalone supervisor (the outage tests kill and restart it) on a database
    of its own, allowing batch files from files.dir."""
    yield from h.batch_module_server(work_dir, pg, "batches", files.dir, supervisor="external",
                                     supervisor_conf={"check_interval": "200ms", "heartbeat_interval": "1s",
                                                      "stop_grace": "4s"})


@pytest.fixture(scope="module")
def early(bt, files):
    """Four batches posted together, so that their spark-submit runs overlap."""
    return {
        "pi": bt.create(file=str(files.pi), args=["2"], name="pi", conf=FAST_CONF),
        "jar": bt.create(file=str(files.jar), className=JAR_CLASS, args=JAR_ARGS, conf=FAST_CONF),
        "fail": bt.create(file=str(files.fail), conf=FAST_CONF),
        "hdfs": bt.create(file=HDFS_FILE, conf=FAST_CONF),
    }


def supervisor_pid(bt: h.BatchClient) -> int:
    """The pid of the running supervisor (its supervisors row, checked against /proc)."""
    rows = bt.db.psql("SELECT pid FROM supervisors WHERE stopped_at IS NULL ORDER BY id DESC LIMIT 1",
                      db=bt.dbname)
    assert rows, "no supervisor registered"
    pid = int(rows[0][0])
    assert h.process_alive(pid) and "livy-supervisor" in h.process_cmdline(pid), pid
    return pid


def wait_registered_after(bt: h.BatchClient, old_pid: int, timeout: float = 30) -> int:
    def new_pid():
        rows = bt.db.psql("SELECT pid FROM supervisors WHERE stopped_at IS NULL AND pid <> "
                          f"{int(old_pid)} ORDER BY id DESC LIMIT 1", db=bt.dbname)
        return int(rows[0][0]) if rows and h.process_alive(int(rows[0][0])) else None
    return h.wait_for(new_pid, timeout, "the restarted supervisor to register")


@pytest.fixture(scope="module")
def outage(bt, files):
    """Two running batches, then kill -9 of the supervisor. While none runs, one batch goes on
    ticking, the other's process group is killed with SIGKILL, and a third batch is posted and
    deleted; then a new supervisor starts with the same configuration (run_dir, host_id)."""
    # The sleeper first: the ticker, started once the sleeper runs, has TICKS seconds to go
    # when the supervisor is killed, however long either took to start.
    victim = bt.create(file=str(files.sleeper), conf=FAST_CONF)["id"]
    bt.wait(victim, "running")
    bt.wait_log_line(victim, r"^sleeper: started$")
    ticker = bt.create(file=str(files.ticker), args=[str(TICKS)], conf=FAST_CONF)["id"]
    bt.wait(ticker, "running")
    bt.wait_log_line(ticker, r"^tick 0$")
    victim_group = bt.row(victim)["pid"]
    assert victim_group, f"batch {victim} runs but its row names no process group: {bt.row(victim)}"
    victim_procs = h.batch_processes(files.sleeper)
    assert victim_procs, "the sleeper batch runs but no process names its file"
    ticker_procs = h.batch_processes(files.ticker)

    old_pid = supervisor_pid(bt)
    os.kill(old_pid, signal.SIGKILL)
    assert not h.wait_gone([old_pid], 10), "the supervisor survived SIGKILL"
    bt.server.stop_external_supervisor()  # reaps it
    os.killpg(victim_group, signal.SIGKILL)
    left = h.wait_gone(victim_procs, 15)
    assert not left, f"the sleeper's processes survived SIGKILL of their group: {left}"
    # Posted and deleted while no supervisor could claim it.
    never = bt.create(file=str(files.never), conf=FAST_CONF)["id"]
    r = bt.server.delete(f"/batches/{never}")
    never_deleted = (r.status_code, r.json(), bt.row(never))
    time.sleep(2)  # the ticker goes on printing while no supervisor runs
    states_while_down = {bid: bt.state(bid) for bid in (ticker, victim)}
    ticker_alive = bool(ticker_procs) and all(h.process_alive(p) for p in ticker_procs)
    bt.server.start_external_supervisor()
    new_pid = wait_registered_after(bt, old_pid)
    return {"ticker": ticker, "victim": victim, "never": never, "never_deleted": never_deleted,
            "old_pid": old_pid, "new_pid": new_pid,
            "states_while_down": states_while_down, "ticker_alive": ticker_alive}


# ------------------------------------------------------------------ refused requests


def test_local_files_outside_the_allowed_paths_are_refused_and_nothing_is_stored(bt, files):
    before = bt.db.snapshot(bt.dbname)
    listed = bt.server.get("/batches").json()
    outside = [
        {"file": "/etc/hostname"},
        {"file": "file:///etc/hostname"},
        {"file": "local:/etc/hostname"},
        {"file": f"{files.dir}/../../../etc/hostname"},         # climbs out with ..
        {"file": f"{files.dir}-elsewhere/pi.py"},               # shares the allowed prefix
        {"file": str(files.pi), "jars": ["/etc/hostname.jar"]},
        {"file": str(files.pi), "pyFiles": ["/etc/hostname.py"]},
        {"file": str(files.pi), "files": ["file:///etc/hostname"]},
        {"file": str(files.pi), "archives": ["/etc/hostname.zip"]},
    ]
    for body in outside:
        r = bt.server.post("/batches", json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert list(r.json()) == ["msg"], (body, r.text)
    assert bt.db.snapshot(bt.dbname) == before
    assert bt.server.get("/batches").json() == listed


# ------------------------------------------------------------------ batches that run to the end


def test_python_batch_ends_success_with_its_output_in_the_log(bt, early):
    created = early["pi"]
    bid = created["id"]
    assert created["name"] == "pi" and created["owner"] is None and created["proxyUser"] is None
    seen = [created["state"]]
    bt.wait(bid, "success", seen=seen)
    order = ["starting", "running", "success"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    log = bt.log(bid)
    pi = [float(m.group(1)) for line in log if (m := re.fullmatch(r"Pi is roughly (\d+\.\d+)", line))]
    assert len(pi) == 1 and 3.0 < pi[0] < 3.3, log[-30:]
    b = bt.batch(bid)
    assert b["state"] == "success" and b["name"] == "pi"
    # The view's log is the last 10 lines of the batch's log.
    assert b["log"] == log[-10:], (b["log"], log[-10:])
    row = bt.row(bid)
    assert row["exit_status"] == 0 and row["ended"] and not row["deleted"], row
    r = bt.server.get("/batches")
    assert r.status_code == 200
    listing = r.json()
    assert list(listing) == ["from", "total", "sessions"] and listing["from"] == 0, listing
    ids = {s["id"]: s for s in listing["sessions"]}
    assert listing["total"] >= len(ids) and bid in ids and ids[bid]["state"] == "success"
    for s in listing["sessions"]:
        bt.check_view(s)


def test_log_pages_the_way_airflow_reads_them(bt, early):
    """Airflow's LivyHook.dump_batch_logs: pages of `size` lines from `from`, while from <= total."""
    bid = early["pi"]["id"]
    bt.wait(bid, "success")
    whole = bt.log(bid)
    size, start, total, lines, pages = 7, 0, 0, [], 0
    while start <= total:
        r = bt.server.get(f"/batches/{bid}/log", params={"from": start, "size": size})
        assert r.status_code == 200, (start, r.status_code, r.text)
        page = r.json()
        assert list(page) == ["id", "from", "total", "log"], page
        assert page["id"] == bid and page["from"] == start and len(page["log"]) <= size, page
        total = page["total"]
        lines += page["log"]
        start += size
        pages += 1
    assert total == len(whole) and lines == whole
    assert pages == len(whole) // size + 1
    # Past the end: an empty page, not an error.
    past = bt.server.get(f"/batches/{bid}/log", params={"from": total + 5, "size": size}).json()
    assert past["log"] == [] and past["total"] == total, past


def test_java_batch_with_class_name_and_args_ends_success(bt, early):
    bid = early["jar"]["id"]
    bt.wait(bid, "success")
    log = bt.log(bid)
    for i, arg in enumerate(JAR_ARGS):
        assert f"{JAR_CLASS} arg[{i}]=<{arg}>" in log, (arg, log[-40:])
    assert f"{JAR_CLASS} arg[{len(JAR_ARGS)}]" not in "\n".join(log)
    assert f"{JAR_CLASS} count=334" in log, log[-40:]
    assert bt.row(bid)["exit_status"] == 0


def test_failing_python_batch_ends_dead_with_its_traceback(bt, early):
    bid = early["fail"]["id"]
    bt.wait(bid, "dead")
    log = bt.log(bid)
    assert "Traceback (most recent call last):" in log, log[-40:]
    assert "ValueError: the batch failed on purpose (42)" in log, log[-40:]
    tb = log.index("Traceback (most recent call last):")
    assert any("in check" in line for line in log[tb:]), log[tb:]
    row = bt.row(bid)
    assert row["exit_status"] not in (None, 0) and row["ended"], row


def test_remote_uri_is_passed_to_spark_submit_which_says_why_it_failed(bt, early):
    created = early["hdfs"]
    bid = created["id"]
    bt.wait(bid, "dead")
    log = bt.log(bid)
    assert any(f"Incomplete HDFS URI, no host: {HDFS_FILE}" in line for line in log), log[-40:]
    assert bt.row(bid)["exit_status"] not in (None, 0)


# ------------------------------------------------------------------ DELETE


def test_delete_kills_a_running_batch_and_all_its_processes(bt, files):
    bid = bt.create(file=str(files.long), conf=FAST_CONF)["id"]
    bt.wait(bid, "running")
    bt.wait_log_line(bid, r"^long job: started$")
    # The task is running once its Python worker is up (PySpark's daemon and the worker it forked).
    procs = h.wait_for(lambda: (ps := h.batch_processes(files.long))
                       and any("pyspark.daemon" in h.process_cmdline(p) for p in ps) and ps,
                       60, "the long job's Python worker")
    group = bt.row(bid)["pid"]
    assert group, bt.row(bid)
    procs = sorted(set(procs) | set(h.process_group_members(group)))

    r = bt.server.delete(f"/batches/{bid}")
    assert r.status_code == 200 and r.json() == {"msg": "deleted"}, (r.status_code, r.text)
    for path in (f"/batches/{bid}", f"/batches/{bid}/state", f"/batches/{bid}/log"):
        r = bt.server.get(path)
        assert r.status_code == 404 and list(r.json()) == ["msg"], (path, r.status_code, r.text)
    assert bid not in {s["id"] for s in bt.server.get("/batches").json()["sessions"]}
    assert bt.server.delete(f"/batches/{bid}").status_code == 404

    h.wait_for(lambda: bt.row(bid)["state"] == "killed", 30,
               f"batch {bid}'s row to say killed (it says {bt.row(bid)})")
    row = bt.row(bid)
    assert row["deleted"] and row["ended"], row
    left = h.wait_gone(procs, 30)
    assert not left, "still running 30 s after DELETE: " + "; ".join(
        f"{p} {h.process_cmdline(p)[:120]}" for p in left)
    h.wait_for(lambda: not h.pids_mentioning(str(files.long)), 10, "no process naming the batch file")


# ------------------------------------------------------------------ supervisor outages


def test_a_batch_outlives_a_killed_supervisor_and_ends_success(bt, outage):
    bid = outage["ticker"]
    # Not ended while no supervisor watched it, and its processes ran on.
    assert outage["states_while_down"][bid] == "running", outage["states_while_down"]
    assert outage["ticker_alive"], "the ticker batch died with its supervisor"
    assert outage["new_pid"] != outage["old_pid"]
    bt.wait(bid, "success", timeout=TICKS + 60)
    log = bt.log(bid)
    ticks = [int(m.group(1)) for line in log if (m := re.fullmatch(r"tick (\d+)", line))]
    # Every line, those printed while no supervisor ran included, once and in order.
    assert ticks == list(range(TICKS)), ticks
    assert "ticker: done" in log, log[-20:]
    assert log.index("ticker: done") > log.index(f"tick {TICKS - 1}")
    assert bt.row(bid)["exit_status"] == 0


def test_a_batch_killed_while_no_supervisor_ran_ends_dead_saying_so(bt, outage):
    bid = outage["victim"]
    assert outage["states_while_down"][bid] == "running", outage["states_while_down"]
    bt.wait(bid, "dead", timeout=30)
    log = bt.log(bid)
    assert "sleeper: started" in log
    notes = [line for line in log[log.index("sleeper: started"):] if line.startswith("livy-supervisor: ")]
    assert any(re.search(r"no supervisor was watching", line) for line in notes), log[-20:]
    row = bt.row(bid)
    assert row["ended"] and not row["deleted"] and row["exit_status"] is None, row


def test_a_batch_deleted_before_any_supervisor_claimed_it_never_runs(bt, outage, files):
    bid = outage["never"]
    status, body, row = outage["never_deleted"]
    assert status == 200 and body == {"msg": "deleted"}, (status, body)
    # Killed at once by the DELETE itself: nobody had claimed it.
    assert row["state"] == "killed" and row["deleted"] and row["ended"], row
    assert row["supervisor_id"] is None and row["pid"] is None, row
    # The restarted supervisor has been at work for as long as the ticker ran on: it never
    # started this one.
    bt.wait(outage["ticker"], "success", timeout=TICKS + 60)
    assert not h.pids_mentioning(str(files.never))
    row = bt.row(bid)
    assert row["state"] == "killed" and row["supervisor_id"] is None and row["pid"] is None, row
    assert not any("spark-submit" in line for line in bt.db_log(bid)), bt.db_log(bid)
    assert bt.server.get(f"/batches/{bid}").status_code == 404
