"""pytest fixtures for mod_livy's integration tests: a shared throwaway PostgreSQL cluster (`pg`),
a factory of httpd servers with mod_livy (`livy_server`), and `server`, one started server per MPM.
The machinery lives in livy_harness.py."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import livy_harness as h  # noqa: E402


def pytest_report_header(config):
    asan = h.asan_runtime()
    return [f"mod_livy: {h.MODULE} ({'ASan, preloading ' + asan if asan else 'plain build'}), "
            f"MPMs: {', '.join(h.selected_mpms())}"]


@pytest.fixture(scope="session")
def work_dir():
    """One temporary directory for the whole run (kept when LIVY_TEST_KEEP is set)."""
    d = Path(tempfile.mkdtemp(prefix="livy-it-"))
    d.chmod(0o755)  # postgres and httpd's User work below it
    yield d
    if not os.environ.get("LIVY_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(work_dir):
    """The shared PostgreSQL cluster: role and database `livy`, migrated once."""
    cluster = h.PgCluster(work_dir, "pg")
    try:
        cluster.setup()
    except h.HarnessError as e:
        cluster.destroy()
        pytest.fail(str(e), pytrace=False)
    yield cluster
    cluster.destroy()


@pytest.fixture
def clean_db(pg):
    """The shared cluster with the service's tables emptied."""
    pg.clear()
    return pg


@pytest.fixture
def private_pg(work_dir, request):
    """A cluster of the test's own, for tests that stop or break the database."""
    name = f"pg-{abs(hash(request.node.nodeid)) % 10**8}"
    cluster = h.PgCluster(work_dir, name)
    try:
        cluster.setup()
    except h.HarnessError as e:
        cluster.destroy()
        pytest.fail(str(e), pytrace=False)
    yield cluster
    cluster.destroy()


@pytest.fixture
def livy_server(work_dir, pg, request):
    """Factory: livy_server(mpm="event"|"prefork", supervisor=False|"managed"|"external",
    extra_conf="...", db=pg, ...) starts an httpd with mod_livy and returns a LivyServer. At the
    end of the test every server is stopped, and the test fails on unexpected error-log lines or
    processes left running (extend the allow-list with server.allow_errors(regex))."""
    factory = h.ServerFactory(work_dir, pg, request.node.name)

    def make(*args, **kw):
        try:
            return factory(*args, **kw)
        except h.HarnessError as e:
            pytest.fail(str(e), pytrace=False)

    yield make
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(params=h.selected_mpms())
def mpm(request):
    return request.param


@pytest.fixture
def server(livy_server, clean_db, mpm):
    """A started server (no supervisor) on the shared, emptied database, once per MPM."""
    return livy_server(mpm=mpm)


@pytest.fixture(scope="session")
def spark_env():
    """For tests that run Spark: fails (never skips) when pyspark or Java 17+ is missing."""
    try:
        return h.check_spark()
    except h.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
