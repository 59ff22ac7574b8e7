"""Real Livy clients run batches against mod_livy: pylivy's LivyBatch (PyPI `livy`, in the test
venv) and Airflow's Livy provider (LivyHook and LivyOperator, in an Airflow venv of its own,
.venv-airflow, run as a subprocess: Airflow's pins would clash with the test venv's).

The Airflow venv is built by scripts/install-deps when LIVY_CLIENT_TESTS=1 or CI is set, which
`scripts/run-tests --clients` (and so .ci/run) does; without it, and unless asked for, the
Airflow test is skipped with the reason printed. Asked for and absent, it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from livy import LivyBatch, SessionState
from livy.client import LivyClient

import livy_harness as h
from livy_client import FAST_CONF

AIRFLOW_VENV = h.ROOT / ".venv-airflow"
AIRFLOW_PYTHON = AIRFLOW_VENV / "bin" / "python"
AIRFLOW_REQUIREMENTS = h.ROOT / "tests" / "requirements-airflow.txt"
AIRFLOW_SCRIPT = Path(__file__).parent / "airflow_batch_client.py"

PI = h.pi_batch('ClientPi', 200000)

HELLO = """\
    import sys

    print("hello " + " ".join(sys.argv[1:]), flush=True)
    """

FAIL = """\
    raise SystemExit("this batch fails on purpose")
    """


def clients_required() -> bool:
    """Whether the client tests were asked for (run-tests --clients, or CI): then they must run."""
    return (os.environ.get("LIVY_CLIENT_TESTS") == "1"
            or os.environ.get("CI", "").lower() not in ("", "0", "false", "no"))


def airflow_pins() -> dict[str, str]:
    pins = {}
    for line in AIRFLOW_REQUIREMENTS.read_text().splitlines():
        m = re.fullmatch(r"\s*([A-Za-z0-9._-]+)==([^\s#;]+).*", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def files(spark_env):
    d = h.batch_files_dir("livy-client-batches-")
    yield SimpleNamespace(dir=d, pi=h.write_batch_file(d, "pi.py", PI),
                          hello=h.write_batch_file(d, "hello.py", HELLO),
                          fail=h.write_batch_file(d, "fail.py", FAIL))
    if not os.environ.get("LIVY_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def clients(work_dir, pg, files):
    """A server with its managed supervisor, allowing batch files from files.dir."""
    yield from h.batch_module_server(work_dir, pg, "batch_clients", files.dir,
                                     supervisor_conf={"check_interval": "200ms"})


@pytest.fixture(scope="module")
def airflow_python():
    """The Airflow venv's interpreter; absent and not asked for, the Airflow test is skipped."""
    if not AIRFLOW_PYTHON.exists():
        how = ("scripts/run-tests --clients, or LIVY_CLIENT_TESTS=1 scripts/install-deps, builds it "
               f"from {AIRFLOW_REQUIREMENTS.relative_to(h.ROOT)}")
        if clients_required():
            pytest.fail(f"the client tests were asked for but {AIRFLOW_VENV} is absent: {how}",
                        pytrace=False)
        pytest.skip(f"Airflow client test not run: {AIRFLOW_VENV} is absent ({how})")
    return AIRFLOW_PYTHON


# ------------------------------------------------------------------ pylivy


def test_pylivy_batch_runs_to_success_and_reads_its_log(clients, files):
    url = clients.server.url
    batch = LivyBatch.create(url, file=str(files.pi), name="pylivy-pi", spark_conf=FAST_CONF)
    bid = batch.batch_id
    assert isinstance(bid, int)
    assert batch.state in {SessionState.STARTING, SessionState.RUNNING}
    assert batch.wait() == SessionState.SUCCESS
    whole = clients.log(bid)
    # pylivy's log() without arguments: Livy's default page, the last 100 lines.
    assert batch.log() == whole[-100:]
    assert any(re.fullmatch(r"Pi is roughly 3\.\d+", line) for line in batch.log(0, len(whole))), whole[-30:]
    # The batch as a second client sees it, by id, and in the list.
    assert LivyBatch(url, bid).state == SessionState.SUCCESS
    client = LivyClient(url)
    try:
        listed = {b.batch_id: b for b in client.list_batches()}
    finally:
        client.close()
    assert listed[bid].state == SessionState.SUCCESS and listed[bid].log == whole[-10:]
    batch.kill()  # DELETE
    with pytest.raises(ValueError, match="not found"):
        batch.state


# ------------------------------------------------------------------ Airflow


def test_airflow_livy_hook_and_operator_run_batches(airflow_python, clients, files, work_dir):
    home = work_dir / "airflow-home"
    home.mkdir(exist_ok=True)
    result = work_dir / "airflow-result.json"
    spec = work_dir / "airflow-spec.json"
    spec.write_text(json.dumps({"pi": str(files.pi), "hello": str(files.hello), "fail": str(files.fail),
                                "conf": FAST_CONF, "timeout": h.BATCH_TIMEOUT, "result": str(result)}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW_CONN_LIVY_DEFAULT=clients.server.url)
    r = subprocess.run([str(airflow_python), str(AIRFLOW_SCRIPT), str(spec)], env=env, capture_output=True,
                       text=True, timeout=3 * h.BATCH_TIMEOUT, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and result.exists(), f"exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}"
    out = json.loads(result.read_text())

    # The venv holds what tests/requirements-airflow.txt pins.
    pins = airflow_pins()
    for package, have in out["versions"].items():
        assert pins.get(package) == have, (f"{AIRFLOW_VENV} has {package} {have}, the pin says "
                                           f"{pins.get(package)}: run LIVY_CLIENT_TESTS=1 scripts/install-deps")

    # LivyHook: post_batch gave an int id; the states it polled, in Livy's order, ended success.
    bid = out["hook_batch_id"]
    assert isinstance(bid, int)
    order = ["starting", "running", "success"]
    assert out["hook_states"][-1] == "success", (out["hook_states"], clients.diagnose(bid))
    assert [order.index(s) for s in out["hook_states"]] == sorted(order.index(s) for s in out["hook_states"])
    # Its paged log (get_batch_logs while from <= total) is the whole log, which has the answer.
    assert any(re.fullmatch(r"Pi is roughly 3\.\d+", line) for line in out["hook_log"]), out["hook_log"][-30:]
    assert all(p["total"] == len(out["hook_log"]) for p in out["hook_log_pages"]), out["hook_log_pages"]
    assert [p["from"] for p in out["hook_log_pages"]] == [25 * i for i in range(len(out["hook_log_pages"]))]
    assert out["hook_dumped"] == out["hook_log"]
    assert out["hook_batch"]["id"] == bid and out["hook_batch"]["state"] == "success"
    assert list(out["hook_batch"]) == h.BATCH_KEYS

    # LivyOperator with polling: its batch succeeded, its log was dumped, appId pushed to XCom.
    op_bid = out["operator_result"]
    assert isinstance(op_bid, int) and op_bid != bid
    assert "hello from airflow" in out["operator_dumped"], out["operator_dumped"][-20:]
    assert out["operator_xcom"] == {"app_id": clients.batch(op_bid)["appId"]}
    assert clients.state(op_bid) == "success"

    # A batch that fails fails the task.
    fail_bid = out["failing_batch_id"]
    assert out["failing_error"] == f"Batch {fail_bid} did not succeed", out["failing_error"]
    assert clients.state(fail_bid) == "dead"
    assert "this batch fails on purpose" in clients.log(fail_bid)

    # delete_batch: Livy's answer, then the batch is gone.
    assert out["delete"] == {"msg": "deleted"}
    assert out["after_delete"] and f"Unable to fetch batch with id: {bid}" in out["after_delete"]
    assert clients.server.get(f"/batches/{bid}").status_code == 404
