"""A Spark standalone cluster for the integration tests: one master and one worker, started from
the venv's pip pyspark (`bin/spark-class ...deploy.master.Master` / `...deploy.worker.Worker`),
both on the host's network address (not loopback: as a real cluster, which the drivers reach
and are reached from over the network) and run as the REPL account (so that no executor runs
user code as root).

The cluster authenticates its RPC with a secret in a spark-defaults.conf of its own
(SPARK_CONF_DIR, readable by the REPL account alone), as README asks operators to do; the
supervisors that use it name the same directory (`spark_conf_dir`). It lives under /var/tmp:
REPLs and batches get a /tmp of their own, where they would not see it. What a test asks of the cluster (the
applications, their executors, the worker's processes) comes from the master's and the worker's
JSON pages and /proc.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import livy_harness as h

# Small JVMs for the daemons: C1 only and the serial collector start them in a few seconds.
DAEMON_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
WORKER_CORES = 4  # more than the machine has: cores are slots here, and apps take one each
WORKER_MEMORY = "4g"
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


def host_address() -> str:
    """The host's own non-loopback IPv4 address (that of the default route's interface);
    connecting a UDP socket sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError as e:
            raise h.HarnessError(f"the cluster tests need a network interface besides loopback: {e}")
        address = probe.getsockname()[0]
    if address.startswith("127."):
        raise h.HarnessError(f"the cluster tests need a non-loopback address; the default route has {address}")
    return address


class StandaloneCluster:
    """A master and a worker under a directory of their own; start() waits until the worker has registered."""

    def __init__(self, user: str | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="livy-spark-", dir="/var/tmp"))
        self.conf_dir = self.root / "conf"
        self.work = self.root / "work"
        self.logs = self.root / "logs"
        self.user = user if user is not None else (h.REPL_USER if h.IS_ROOT else None)
        self.secret = secrets.token_hex(24)
        self.host = host_address()
        self.port = h.free_port()
        self.master_ui_port = h.free_port()
        self.worker_ui_port = h.free_port()
        self.url = f"spark://{self.host}:{self.port}"
        self.master_ui = f"http://{self.host}:{self.master_ui_port}"
        self.worker_ui = f"http://{self.host}:{self.worker_ui_port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    # -- configuration
    def write_files(self) -> None:
        for d in (self.root, self.conf_dir, self.work, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        defaults = self.conf_dir / "spark-defaults.conf"
        defaults.write_text("# the cluster's shared secret: the master, the worker, every driver\n"
                            "spark.authenticate true\n"
                            f"spark.authenticate.secret {self.secret}\n")
        # The secret is for the cluster's account only (drivers run as it too, under the REPL
        # account): nobody else on the host may read it.
        defaults.chmod(0o600)
        self.conf_dir.chmod(0o700)
        if self.user:
            for path in (self.conf_dir, defaults, self.work, self.logs):
                h.chown_to(path, self.user)

    # -- lifecycle
    def _spawn(self, role: str, cls: str, *args: str) -> None:
        spark_class = h.pyspark_dir() / "bin" / "spark-class"
        env = dict(os.environ, SPARK_CONF_DIR=str(self.conf_dir), SPARK_LOCAL_IP=self.host,
                   SPARK_DAEMON_JAVA_OPTS=DAEMON_JAVA_OPTS, SPARK_LOG_DIR=str(self.logs),
                   SPARK_NO_DAEMONIZE="1")
        # The worker hands executors the Python of the drivers' (spark.pyspark.python, or PATH's
        # python3): the venv's first, as on a cluster node set up for PySpark.
        env["PATH"] = f"{h.VENV_PYTHON.parent}:{env.get('PATH', '/usr/bin:/bin')}"
        log = open(self.logs / f"{role}.out", "ab")
        self._logs.append(log)
        prefix = h.as_user_prefix(self.user) if self.user else []
        self.procs[role] = subprocess.Popen(
            prefix + [str(spark_class), cls, *args], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, cwd=self.work, start_new_session=True)

    def start(self, timeout: float = 120) -> "StandaloneCluster":
        self.write_files()
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", self.host,
                    "--port", str(self.port), "--webui-port", str(self.master_ui_port))
        h.wait_for(lambda: self._json(self.master_ui), timeout, "the Spark master's web UI",
                   interval=0.5)
        self._spawn("worker", "org.apache.spark.deploy.worker.Worker", "--host", self.host,
                    "--webui-port", str(self.worker_ui_port), "--cores", str(WORKER_CORES),
                    "--memory", WORKER_MEMORY, "--work-dir", str(self.work), self.url)
        h.wait_for(lambda: any(w["state"] == "ALIVE" for w in self.master().get("workers", [])),
                   timeout, "the Spark worker to register with its master", interval=0.5)
        return self

    def stop(self) -> list[str]:
        """Stops the daemons; returns problems: executors still running (orphans of an
        application that should have ended), daemons that would not stop."""
        problems = []
        left = self.executor_pids()
        if left:
            problems.append("executors still running when the cluster stopped: " +
                            "; ".join(f"{p} {h.process_cmdline(p)[:160]}" for p in left))
        pids = []
        for role in ("worker", "master"):
            p = self.procs.get(role)
            if p and p.poll() is None:
                pids += [p.pid] + h.descendants(p.pid)
        h.terminate(pids + left)
        stuck = [p for p in pids + left if h.process_alive(p)]
        if stuck:
            problems.append(f"cluster processes survived SIGKILL: {stuck}")
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                problems.append(f"{p.args[-1]} did not exit")
        for log in self._logs:
            log.close()
        return problems

    def destroy(self) -> None:
        if not os.environ.get("LIVY_TEST_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        out = []
        for role in ("master", "worker"):
            path = self.logs / f"{role}.out"
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-n:]
                out.append(f"---- {path}\n" + "\n".join(lines))
        return "\n".join(out)

    # -- what the cluster says
    @staticmethod
    def _json(base: str) -> dict | None:
        try:
            with urllib.request.urlopen(base + "/json/", timeout=10) as r:
                return json.load(r)
        except OSError:
            return None

    def master(self) -> dict:
        d = self._json(self.master_ui)
        if d is None:
            raise h.HarnessError(f"the Spark master does not answer on {self.master_ui}\n{self.log_tail()}")
        return d

    def worker(self) -> dict:
        d = self._json(self.worker_ui)
        if d is None:
            raise h.HarnessError(f"the Spark worker does not answer on {self.worker_ui}\n{self.log_tail()}")
        return d

    def app(self, app_id: str) -> dict | None:
        """The master's record of an application, with "active" saying whether it still runs."""
        m = self.master()
        for key, active in (("activeapps", True), ("completedapps", False)):
            for a in m.get(key, []):
                if a["id"] == app_id:
                    return dict(a, active=active)
        return None

    def running_executors(self, app_id: str | None = None) -> list[dict]:
        """The worker's running executors (of app_id, or all)."""
        return [e for e in self.worker().get("executors", [])
                if app_id is None or e["appid"] == app_id]

    def executor_pids(self, app_id: str | None = None) -> list[int]:
        """Executor JVMs on this host (of app_id, or all): found in /proc by their class and
        --app-id, wherever their worker is."""
        out = []
        for p in h.pids_mentioning(EXECUTOR_CLASS):
            cmd = h.process_cmdline(p)
            if EXECUTOR_CLASS in cmd and (app_id is None or f"--app-id {app_id}" in cmd):
                out.append(p)
        return out

    def wait_task_pid(self, app_id: str, marker: str, timeout: float = 60) -> int:
        """The pid a task of app_id printed after marker on its executor's stderr (which the
        worker keeps in its directory: work/<app>/<executor>/stderr)."""
        pattern = re.compile(rf"^{re.escape(marker)} (\d+)$", re.M)

        def printed():
            for path in (self.work / app_id).glob("*/stderr"):
                m = pattern.search(path.read_text(errors="replace"))
                if m:
                    return int(m.group(1))
            return None
        return h.wait_for(printed, timeout, f"a task of {app_id} to print {marker!r}", interval=0.2)

    def wait_app_running(self, app_id: str, timeout: float = 60) -> dict:
        """The application's record once it runs with at least one executor on the worker."""
        def running():
            a = self.app(app_id)
            return a if a and a["active"] and self.running_executors(app_id) else None
        return h.wait_for(running, timeout, f"application {app_id} to run an executor on the worker",
                          interval=0.5)

    def wait_executors_gone(self, app_id: str, timeout: float = 60) -> None:
        """The application has left the master's active list and its executors are gone from
        the worker and from /proc."""
        def gone():
            a = self.app(app_id)
            return (a is not None and not a["active"] and not self.running_executors(app_id)
                    and not self.executor_pids(app_id))
        try:
            h.wait_for(gone, timeout, f"application {app_id}'s executors to end", interval=0.5)
        except AssertionError as e:
            raise AssertionError(f"{e}: app {self.app(app_id)}, worker executors "
                                 f"{self.running_executors(app_id)}, pids {self.executor_pids(app_id)}")

