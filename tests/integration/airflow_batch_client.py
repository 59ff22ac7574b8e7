"""Airflow's Livy provider against a live mod_livy: run by test_batch_clients.py with the Python of
the Airflow venv (.venv-airflow, which scripts/install-deps builds from tests/requirements-airflow.txt),
never imported by pytest. Uses LivyHook (post_batch, get_batch_state, get_batch_logs,
dump_batch_logs, get_batch, delete_batch) and LivyOperator.execute with polling, as a DAG's task
would, and writes what it saw as JSON to the file named in its spec.

Usage: python airflow_batch_client.py SPEC.json   (the connection comes from AIRFLOW_CONN_LIVY_DEFAULT)
"""

from __future__ import annotations

import json
import logging
import sys
import time
from importlib.metadata import version


class Recorder(logging.Handler):
    """Keeps the messages a hook logs (dump_batch_logs logs every line of a batch's log)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class TaskInstance:
    """What LivyOperator needs of a task instance outside a DAG run: xcom_push."""

    def __init__(self):
        self.xcom: dict = {}

    def xcom_push(self, key, value, **_):
        self.xcom[key] = value


def dumped_lines(recorder: Recorder, bid: int) -> list[str]:
    """The lines dump_batch_logs logged for batch bid (they follow its 'Fetching' message)."""
    head = f"Fetching the logs for batch session with id: {bid}"
    msgs = recorder.messages
    return msgs[msgs.index(head) + 1:] if head in msgs else []


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    from airflow.exceptions import AirflowException
    from airflow.providers.apache.livy.hooks.livy import BatchState, LivyHook
    from airflow.providers.apache.livy.operators.livy import LivyOperator

    out: dict = {"versions": {p: version(p) for p in ("apache-airflow", "apache-airflow-providers-apache-livy",
                                                      "apache-airflow-providers-http")}}

    # -- the hook, step by step, as a custom operator or sensor would use it
    hook = LivyHook()
    bid = hook.post_batch(file=spec["pi"], args=[2], name="airflow-pi", conf=spec["conf"])
    out["hook_batch_id"] = bid
    states = []
    deadline = time.monotonic() + spec["timeout"]
    while True:
        state = hook.get_batch_state(bid)
        if not states or states[-1] != state.value:
            states.append(state.value)
        if state in LivyHook.TERMINAL_STATES or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out["hook_states"] = states
    # Paged the way dump_batch_logs pages: from += size while from <= total.
    lines, start, total, pages = [], 0, 0, []
    while start <= total:
        page = hook.get_batch_logs(bid, start, 25)
        pages.append({"from": page["from"], "total": page["total"], "n": len(page["log"])})
        total = page["total"]
        lines += page["log"]
        start += 25
    out["hook_log"] = lines
    out["hook_log_pages"] = pages
    recorder = Recorder()
    hook.log.addHandler(recorder)
    hook.log.setLevel(logging.INFO)
    hook.dump_batch_logs(bid)
    out["hook_dumped"] = dumped_lines(recorder, bid)
    batch = hook.get_batch(bid)
    out["hook_batch"] = batch

    # -- the operator, as a task with polling runs it (submit, poll, dump the log, push appId)
    ti = TaskInstance()
    op = LivyOperator(task_id="livy_hello", file=spec["hello"], args=["from", "airflow"],
                      conf=spec["conf"], polling_interval=1)
    op_recorder = Recorder()
    op.hook.log.addHandler(op_recorder)
    op.hook.log.setLevel(logging.INFO)
    t = time.monotonic()
    out["operator_result"] = op.execute(context={"ti": ti})
    out["operator_seconds"] = time.monotonic() - t
    out["operator_xcom"] = ti.xcom
    out["operator_dumped"] = dumped_lines(op_recorder, out["operator_result"])

    # -- a failing batch fails the task
    failing = LivyOperator(task_id="livy_fail", file=spec["fail"], conf=spec["conf"], polling_interval=1)
    try:
        failing.execute(context={"ti": TaskInstance()})
        out["failing_error"] = None
    except AirflowException as e:
        out["failing_error"] = str(e)
    out["failing_batch_id"] = failing._batch_id

    # -- delete: then the batch is gone for the hook too
    out["delete"] = hook.delete_batch(bid)
    try:
        hook.get_batch(bid)
        out["after_delete"] = None
    except AirflowException as e:
        out["after_delete"] = str(e)

    with open(spec["result"], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
