"""A one-node YARN cluster for the integration tests that run Spark on YARN (test_cluster_yarn.py).

tests/cluster/MiniYarn.java (a ResourceManager from Hadoop's MiniYARNCluster and one NodeManager)
is compiled here with javac against the jars scripts/install-deps fetches into .cluster-jars/ (when
LIVY_CLUSTER_TESTS=1, which `scripts/run-tests --cluster` sets, or in CI) and the Hadoop client
pip's pyspark bundles. MiniYarnCluster starts it, writes the configuration a supervisor running
Spark on it needs (HADOOP_CONF_DIR, SPARK_CONF_DIR), and reads the cluster's REST APIs (the
ResourceManager's view of an application, the NodeManager's of its containers).

Everything a REPL child reads lies under /var/tmp: REPLs and batches get a /tmp of their own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

import livy_harness as h

CLUSTER_JARS = h.ROOT / ".cluster-jars"
LAUNCHER_SOURCE = h.ROOT / "tests" / "cluster" / "MiniYarn.java"
# What MiniYarn takes from pyspark's jars/: Hadoop's client, logging, BouncyCastle's provider.
PYSPARK_JARS = ("hadoop-client-api", "hadoop-client-runtime", "slf4j-api", "log4j-slf4j2-impl",
                "log4j-api", "log4j-core", "log4j-1.2-api", "jcl-over-slf4j", "bcprov-jdk18on")
START_TIMEOUT = 180  # two JVMs starting on two busy cores
STOP_TIMEOUT = 90
APP_ID = re.compile(r"application_\d+_\d+")
READY = re.compile(r"^MINIYARN READY rm=(\S+) rm-web=(\S+) nm-web=(\S+)$", re.M)


def cluster_tests_required() -> bool:
    """Whether the cluster tests were asked for (run-tests --cluster, or CI): then they must run."""
    return (os.environ.get("LIVY_CLUSTER_TESTS") == "1"
            or os.environ.get("CI", "").lower() not in ("", "0", "false", "no"))


def java_home() -> Path:
    """The JDK of `java` on PATH: the NodeManager starts containers with $JAVA_HOME/bin/java."""
    java = shutil.which("java")
    if not java:
        raise h.HarnessError("java not found: the YARN cluster needs a JDK (run scripts/install-deps)")
    return Path(java).resolve().parents[1]


def launcher_classpath() -> list[Path]:
    """The jars MiniYarn runs on; raises HarnessError saying what to fetch when one is missing,
    or when the minicluster's Hadoop is not the one pyspark bundles."""
    jars = h.pyspark_dir() / "jars"
    api = sorted(jars.glob("hadoop-client-api-*.jar"))
    if not api:
        raise h.HarnessError(f"no hadoop-client-api jar in {jars}: pyspark's Hadoop client is missing")
    version = api[0].name[len("hadoop-client-api-"):-len(".jar")]
    minicluster = CLUSTER_JARS / f"hadoop-client-minicluster-{version}.jar"
    if not minicluster.exists():
        raise h.HarnessError(f"{minicluster} is missing (pyspark bundles Hadoop {version}): run "
                             "LIVY_CLUSTER_TESTS=1 scripts/install-deps (scripts/run-tests --cluster does)")
    out = [minicluster]
    out += sorted(p for p in CLUSTER_JARS.glob("*.jar") if not p.name.startswith("hadoop-client-minicluster-"))
    for name in PYSPARK_JARS:
        found = sorted(jars.glob(f"{name}-[0-9]*.jar"))
        if not found:
            raise h.HarnessError(f"no {name} jar in {jars}")
        out.append(found[-1])
    return out


class MiniYarnCluster:
    """MiniYarn running in a directory of its own under /var/tmp (its work files, the client
    configuration, Spark's staging directory), stopped by closing its stdin."""

    def __init__(self, memory_mb: int = 8192, vcores: int = 8):
        self.memory_mb = memory_mb
        self.vcores = vcores
        self.dir = Path(tempfile.mkdtemp(prefix="livy-yarn-", dir="/var/tmp"))
        self.dir.chmod(0o755)
        self.hadoop_conf = self.dir / "hadoop-conf"
        self.spark_conf = self.dir / "spark-conf"
        self.staging = self.dir / "staging"
        self.work = self.dir / "work"
        self.classes = self.dir / "classes"
        self.log_path = self.dir / "miniyarn.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.rm_address = self.rm_web = self.nm_web = None

    # -- lifecycle
    def start(self, timeout: float = START_TIMEOUT) -> "MiniYarnCluster":
        classpath = launcher_classpath()
        jdk = java_home()
        for d in (self.hadoop_conf, self.spark_conf, self.staging, self.work, self.classes):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        # Every REPL account stages its application here (Spark makes a 0700 directory per
        # application below it).
        self.staging.chmod(0o1777)
        cp = ":".join(str(p) for p in classpath)
        javac = subprocess.run(["javac", "-d", str(self.classes), "-cp", cp, str(LAUNCHER_SOURCE)],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if javac.returncode != 0:
            raise h.HarnessError(f"javac could not compile {LAUNCHER_SOURCE}:\n{javac.stdout}{javac.stderr}")
        self._log = open(self.log_path, "ab")
        env = dict(os.environ, JAVA_HOME=str(jdk))
        self.proc = subprocess.Popen(
            [jdk / "bin" / "java", "--add-opens", "java.base/java.lang=ALL-UNNAMED", "-Xmx512m",
             "-cp", f"{cp}:{self.classes}", "MiniYarn", self.hadoop_conf, str(self.memory_mb),
             str(self.vcores)],
            cwd=self.work, stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            m = READY.search(self.log_path.read_text(errors="replace"))
            if m:
                break
            if self.proc.poll() is not None:
                raise h.HarnessError(f"MiniYarn exited with status {self.proc.returncode} while "
                                     f"starting\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise h.HarnessError(f"MiniYarn was not ready within {timeout}s\n{self.log_tail()}")
            time.sleep(0.25)
        self.rm_address, self.rm_web, self.nm_web = m.groups()
        self.write_spark_conf()
        for path in (self.hadoop_conf / "yarn-site.xml", self.hadoop_conf / "core-site.xml"):
            path.chmod(0o644)
        return self

    def write_spark_conf(self) -> None:
        """spark-defaults.conf and spark-env.sh for Spark on this cluster, in client deploy mode
        (the driver in the REPL or spark-submit on this host, executors in containers): Spark's
        jars and pyspark are already on this host (`local:`, nothing uploaded), executors run the
        venv's interpreter, and stay small."""
        pyspark = h.pyspark_dir()
        defaults = {
            "spark.yarn.jars": f"local:{pyspark / 'jars'}/*",
            "spark.yarn.stagingDir": f"file://{self.staging}",
            "spark.pyspark.python": str(h.VENV_PYTHON),
            "spark.executor.instances": "1",
            "spark.executor.cores": "1",
            "spark.executor.memory": "512m",
            "spark.yarn.am.memory": "256m",
        }
        conf = self.spark_conf / "spark-defaults.conf"
        conf.write_text("# written by tests/integration/yarn_cluster.py\n"
                        + "".join(f"{k} {v}\n" for k, v in defaults.items()))
        # Spark on YARN puts pyspark on the executors' PYTHONPATH from here (a Spark distribution
        # has python/lib/pyspark.zip instead, which pip's pyspark lacks).
        env_sh = self.spark_conf / "spark-env.sh"
        env_sh.write_text("# written by tests/integration/yarn_cluster.py\n"
                          f"PYSPARK_ARCHIVES_PATH=local:{pyspark.parent}\n")
        for path in (conf, env_sh):
            path.chmod(0o644)

    def supervisor_conf(self) -> dict:
        """What a supervisor running Spark on this cluster is configured with (it exports the
        directories to its REPLs and batches as HADOOP_CONF_DIR and SPARK_CONF_DIR)."""
        return {"spark_master": "yarn", "hadoop_conf_dir": str(self.hadoop_conf),
                "spark_conf_dir": str(self.spark_conf)}

    def stop(self) -> list[str]:
        """Stops the cluster (its NodeManager kills what containers still run); returns complaints
        about processes that did not go away on their own."""
        problems = []
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"MiniYarn did not stop within {STOP_TIMEOUT}s: killed")
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        left = h.wait_gone(h.pids_mentioning(str(self.dir)), 10)
        if left:
            problems.append("still running after MiniYarn stopped: " +
                            "; ".join(f"{p}: {h.process_cmdline(p)[:150]}" for p in left))
            h.terminate(left)
        if self._log:
            self._log.close()
            self._log = None
        return problems

    def remove(self) -> None:
        if not os.environ.get("LIVY_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        return f"---- {self.log_path} (last {n} lines)\n" + "\n".join(lines[-n:])

    # -- the ResourceManager's and the NodeManager's REST APIs
    # (Of the ResourceManager's, the routes whose answers come back whole from the minicluster
    # jar: its shaded Jersey finds no JAXB writer for YARN's web classes and falls back on
    # Jackson, which renders only their getters, so /apps/{id} lacks its state and counts;
    # /apps/{id}/state, /appattempts and an attempt's /containers are complete.)
    def rm_get(self, path: str) -> dict:
        r = requests.get(f"http://{self.rm_web}/ws/v1/cluster/{path}", timeout=30,
                         headers={"Accept": "application/json"})
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        return r.json()

    def app_state(self, app_id: str) -> str:
        """The application's YARN state (NEW ... RUNNING, FINISHED, FAILED, KILLED)."""
        return self.rm_get(f"apps/{app_id}/state")["state"]

    def app_attempts(self, app_id: str) -> list[dict]:
        return self.rm_get(f"apps/{app_id}/appattempts")["attempts"] or []

    def rm_containers(self, app_id: str) -> list[dict]:
        """The containers the ResourceManager has allocated to the application's attempts."""
        out = []
        for attempt in self.app_attempts(app_id):
            got = self.rm_get(f"apps/{app_id}/appattempts/{attempt['appAttemptId']}/containers")
            out += got.get("containers") or []
        return out

    def nm_containers(self, app_id: str) -> list[dict]:
        """The application's containers the NodeManager knows of."""
        r = requests.get(f"http://{self.nm_web}/ws/v1/node/containers", timeout=30,
                         headers={"Accept": "application/json"})
        assert r.status_code == 200, (r.status_code, r.text[:500])
        prefix = "container_" + app_id[len("application_"):] + "_"
        return [c for c in (r.json().get("containers") or []) if c["id"].startswith(prefix)]

    def wait_app_state(self, app_id: str, states, timeout: float = 120) -> str:
        states = {states} if isinstance(states, str) else set(states)
        return wait_saying(lambda: (s := self.app_state(app_id)) in states and s, timeout,
                           f"{app_id} to be {'/'.join(sorted(states))}",
                           lambda: f"it is {self.app_state(app_id)}")

    def wait_containers_released(self, app_id: str, timeout: float = 120) -> None:
        """Until neither the ResourceManager nor the NodeManager holds a container of app_id."""
        wait_saying(lambda: not self.rm_containers(app_id) and not self.nm_containers(app_id), timeout,
                    f"{app_id}'s containers to be released",
                    lambda: (f"the ResourceManager holds {[c['containerId'] for c in self.rm_containers(app_id)]}, "
                             f"the NodeManager {[(c['id'], c['state']) for c in self.nm_containers(app_id)]}"))


def wait_saying(predicate, timeout: float, what: str, now, interval: float = 0.5):
    """h.wait_for, and on timeout what now() says of the state it ended in."""
    try:
        return h.wait_for(predicate, timeout, what, interval=interval)
    except AssertionError as e:
        raise AssertionError(f"{e} ({now()})") from None


def cluster_fixture(spark_env):
    """The body of a module-scoped fixture (`yield from yarn_cluster.cluster_fixture(...)`): a
    started MiniYarnCluster, stopped and checked after the last test (processes left behind fail
    through pytest); a cluster that cannot start fails, never skips."""
    import pytest

    cluster = MiniYarnCluster()
    try:
        cluster.start()
    except h.HarnessError as e:
        cluster.stop()
        pytest.fail(str(e), pytrace=False)
    yield cluster
    problems = cluster.stop()
    cluster.remove()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def yarn_module_server(work_dir: Path, pg: h.PgCluster, dbname: str, cluster: MiniYarnCluster,
                       files_dir: Path, supervisor_conf: dict | None = None, allow=()):
    """The body of a module-scoped fixture (`yield from yarn_cluster.yarn_module_server(...)`): a
    server (event MPM) on a database of its own whose standalone supervisor runs Spark on
    `cluster` (spark_master yarn, the cluster's hadoop_conf_dir and spark_conf_dir), allowing
    batch files from files_dir; yields the LivyServer. After the
    last test, batch processes still running from files_dir are a leak, and the server is stopped
    and checked as h.module_server does."""
    import pytest

    pg.create_database(dbname)
    factory = h.ServerFactory(work_dir, pg, dbname)
    try:
        server = factory(mpm="event", supervisor="external", dbname=dbname,
                         extra_conf=f'LivyBatchAllowedPaths "{files_dir}"\n',
                         supervisor_conf={**cluster.supervisor_conf(), **(supervisor_conf or {})})
        server.allow_errors(*allow)
        server.start_external_supervisor()
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    yield server
    left = h.batch_processes(files_dir)
    problems = ["batch processes still running after the last test: " +
                "; ".join(f"{p} {h.process_cmdline(p)[:150]}" for p in left)] if left else []
    h.terminate(left)
    problems += factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
