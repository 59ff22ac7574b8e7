"""sparkmagic's Spark (Scala) kernel against mod_livy, without Jupyter: sparkmagic_client.py, run
in .venv-sparkmagic (tests/requirements-sparkmagic.txt, a venv of its own: sparkmagic pins Jupyter
and pandas versions of its own), does what the kernel does: start a `spark` session and probe
`spark`, run cells (spark.range count, a case class Dataset), an error cell, and a `%%sql` cell
through sparkmagic's own SQLQuery, then delete the session.

The venv is built by scripts/install-deps when LIVY_CLIENT_TESTS=1 or CI is set, as the other
client tests' venvs; without it and not asked for, this test is skipped with the reason printed.
Asked for and absent, it fails.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server, start_server
from test_batch_clients import clients_required

SPARKMAGIC_VENV = h.ROOT / ".venv-sparkmagic"
SPARKMAGIC_PYTHON = SPARKMAGIC_VENV / "bin" / "python"
SPARKMAGIC_REQUIREMENTS = h.ROOT / "tests" / "requirements-sparkmagic.txt"
CLIENT = h.ROOT / "tests" / "integration" / "sparkmagic_client.py"


@pytest.fixture(scope="module")
def sparkmagic_python():
    if not SPARKMAGIC_PYTHON.exists():
        how = ("scripts/run-tests --clients, or LIVY_CLIENT_TESTS=1 scripts/install-deps, builds it "
               f"from {SPARKMAGIC_REQUIREMENTS.relative_to(h.ROOT)}")
        if clients_required():
            pytest.fail(f"the client tests were asked for but {SPARKMAGIC_VENV} is absent: {how}",
                        pytrace=False)
        pytest.skip(f"sparkmagic client test not run: {SPARKMAGIC_VENV} is absent ({how})")
    return SPARKMAGIC_PYTHON


@pytest.fixture(scope="module")
def server(work_dir, pg, spark_env):
    factory, srv = start_server(work_dir, pg, "sparkmagic", "sparkmagic", "event",
                                {"check_interval": "200ms"})
    yield Client(srv, pg, "sparkmagic")
    finish_server(factory)


def test_sparkmagic_scala_kernel_flow(sparkmagic_python, server, tmp_path):
    # sparkmagic's own settings: a Spark start here may take longer than its 60 s default
    (tmp_path / "config.json").write_text(json.dumps({
        "livy_session_startup_timeout_seconds": 240, "wait_for_idle_timeout_seconds": 120}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(SPARKMAGIC_CONF_DIR=str(tmp_path), HOME=str(tmp_path))
    r = subprocess.run([str(sparkmagic_python), str(CLIENT), server.server.url,
                        json.dumps(FAST_CONF)], capture_output=True, text=True, timeout=600,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, f"sparkmagic failed:\n{r.stdout}\n{r.stderr[-4000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["status"] == "idle" and out["sql_context"] == "spark", out
    ok, text, mime = out["count"]
    assert ok and mime == "text/plain" and text == "res1: Long = 10\n", out["count"]
    ok, text, _ = out["case_class"]
    assert ok and text.startswith("defined class Reading\n") and text.endswith(
        ": Double = 4.5\n"), out["case_class"]
    ok, text, _ = out["error"]
    assert not ok and "value noSuchMethod is not a member of" in text, out["error"]
    assert out["sql"] == [{"sensor": "a", "total": 4.5}, {"sensor": "b", "total": 2.5}], out["sql"]
    # the kernel's session is gone
    assert server.server.get(f"/sessions/{out['session_id']}").status_code == 404
