# Integration tests of the REPL child driver (repl/livy_repl.py) against real Spark: each test
# talks to the child over its Unix socket exactly as the supervisor does (docs/repl-protocol.md).
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(REPO, "repl", "livy_repl.py")
SESSION_ID = 7
SPARK_START_TIMEOUT_S = 120  # a cold start takes ~10 s on 2 cores; leave room for a busy CI box
TEST_SPARK_SETTINGS = {
    "spark.master": "local[2]",
    "spark.app.name": "repl-driver-test",
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.memory": "512m",
}
# For the tests that need a child of their own: no UI and one core start a little faster.
LIGHT_SPARK_SETTINGS = {"spark.master": "local[1]", "spark.ui.enabled": "false"}


def require_pyspark():
    # A missing pyspark must fail these tests, not skip them: CI would pass without testing.
    if find_spec("pyspark") is None:
        pytest.fail("pyspark is not installed for %s; install tests/requirements.txt"
                    % sys.executable)


class ReplChild:
    """One REPL child process plus a supervisor-like connection to it."""

    def __init__(self, spark_settings=None, output_max_bytes=1048576, sql_row_cap=1000,
                 extra_conf=None):
        require_pyspark()
        self.run_dir = tempfile.mkdtemp(prefix="livy-repl-")  # short: socket paths max ~108 B
        self.socket_path = os.path.join(self.run_dir, "session-%d.sock" % SESSION_ID)
        self.pid_path = os.path.join(self.run_dir, "session-%d.pid" % SESSION_ID)
        self.log_path = os.path.join(self.run_dir, "session-%d.log" % SESSION_ID)
        conf_path = os.path.join(self.run_dir, "session-%d.conf.json" % SESSION_ID)
        conf = {
            "spark": dict(TEST_SPARK_SETTINGS, **(spark_settings or {})),
            "output_max_bytes": output_max_bytes,
            "sql_row_cap": sql_row_cap,
        }
        conf.update(extra_conf or {})
        with open(conf_path, "w") as conf_file:
            json.dump(conf, conf_file)
        self.child_output = open(os.path.join(self.run_dir, "child.out"), "wb")
        # The session's secret reaches the child on an inherited pipe, as from the supervisor.
        self.secret = secrets.token_bytes(32)
        secret_read, secret_write = os.pipe()
        os.write(secret_write, self.secret.hex().encode() + b"\n")
        os.close(secret_write)
        self.process = subprocess.Popen(
            [sys.executable, DRIVER, "--session-id", str(SESSION_ID), "--socket",
             self.socket_path, "--secret-fd", str(secret_read), "--conf-file", conf_path,
             "--kind", "pyspark", "--log-file", self.log_path, "--pid-file", self.pid_path],
            cwd=self.run_dir, stdin=subprocess.DEVNULL, stdout=self.child_output,
            stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(secret_read,),
        )
        os.close(secret_read)
        self.sock = None
        self.pending = b""
        self.messages = []  # everything received, for assertions on logs
        self.next_statement_id = 0

    # -- connection ------------------------------------------------------------------------------

    def open_socket(self, timeout=30):
        """A bare connection to the child's socket (nothing sent yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.socket_path)
                return sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError("cannot connect to %s\n%s"
                                         % (self.socket_path, self.diagnostics()))
                time.sleep(0.05)

    def proof(self, role, repl_nonce, supervisor_nonce, secret=None):
        message = "livy-repl-auth 2 %s %d %s %s" % (role, SESSION_ID, repl_nonce,
                                                    supervisor_nonce)
        return hmac.new(secret or self.secret, message.encode(), hashlib.sha256).hexdigest()

    def connect(self, timeout=30):
        """Connects, proves the secret (and checks the child's proof), and says hello, as the
        supervisor does on every (re)connect."""
        if self.sock is not None:
            self.disconnect()
        self.sock, self.pending = self.open_socket(timeout), b""
        challenge = self.read_message(10)
        assert challenge["type"] == "challenge" and challenge["protocol"] == 2, challenge
        nonce = secrets.token_hex(16)
        self.send(op="auth", protocol=2, nonce=nonce,
                  proof=self.proof("supervisor", challenge["nonce"], nonce))
        answer = self.read_message(10)
        assert answer == {"type": "auth",
                          "proof": self.proof("repl", challenge["nonce"], nonce)}, answer
        self.send(op="hello")
        return self.wait_for(lambda message: message["type"] == "hello", 10)

    def disconnect(self):
        self.sock.close()
        self.sock = None

    def send(self, **message):
        self.sock.sendall((json.dumps(message) + "\n").encode())

    def read_message(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message within %.1f s" % timeout)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no message within %.1f s" % timeout)
            if not chunk:
                raise EOFError("the child closed the connection")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        message = json.loads(line)
        self.messages.append(message)
        return message

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = self.read_message(max(remaining, 0.001))
            except TimeoutError:
                raise AssertionError("timed out after %.0f s\n%s" % (timeout, self.diagnostics()))
            if predicate(message):
                return message

    def messages_within(self, seconds):
        received = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                received.append(self.read_message(max(deadline - time.monotonic(), 0.001)))
            except TimeoutError:
                break
        return received

    # -- statements ------------------------------------------------------------------------------

    def wait_ready(self):
        hello = self.connect()
        if hello["state"] != "starting":
            return {"type": "ready", "app_id": hello["app_id"],
                    "spark_ui_url": hello["spark_ui_url"]}
        return self.wait_for(lambda message: message["type"] in ("ready", "fatal"),
                             SPARK_START_TIMEOUT_S)

    def execute(self, code, kind="pyspark"):
        statement_id = self.next_statement_id
        self.next_statement_id += 1
        self.send(op="execute", id=statement_id, code=code, kind=kind)
        return statement_id

    def result_of(self, statement_id, timeout=60, ack=True):
        result = self.wait_for(
            lambda message: message["type"] == "result" and message["id"] == statement_id,
            timeout)
        if ack:
            self.send(op="ack", id=statement_id)
        return result

    def run(self, code, kind="pyspark", timeout=60):
        """Runs one statement and returns its output, which must be available."""
        statement_id = self.execute(code, kind)
        result = self.result_of(statement_id, timeout)
        assert result["state"] == "available", result
        assert result["output"]["execution_count"] == statement_id
        return result["output"]

    def text_of(self, code, kind="pyspark"):
        output = self.run(code, kind)
        assert output["status"] == "ok", output
        return output["data"]["text/plain"]

    # -- teardown --------------------------------------------------------------------------------

    def wait_exit(self, timeout):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("the child did not exit within %d s\n%s"
                                 % (timeout, self.diagnostics()))

    def diagnostics(self):
        self.child_output.flush()
        texts = []
        for path in (self.log_path, os.path.join(self.run_dir, "child.out")):
            try:
                with open(path, errors="replace") as source:
                    texts.append("--- %s (tail)\n%s" % (path, source.read()[-4000:]))
            except OSError:
                pass
        return "\n".join(texts)

    def close(self):
        if self.process.poll() is None:
            try:
                if self.sock is None:
                    self.connect()
                self.send(op="shutdown")
                self.process.wait(30)
            except Exception:
                pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.sock is not None:
            self.sock.close()
        self.child_output.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def repl():
    """One child shared by most tests, since a Spark start costs ~10 s. Small limits so that the
    truncation and row-cap tests need no child of their own."""
    child = ReplChild(output_max_bytes=4096, sql_row_cap=5)
    started = time.monotonic()
    child.ready = child.wait_ready()
    child.start_seconds = time.monotonic() - started
    print("Spark cold start through the REPL child: %.1f s" % child.start_seconds)
    yield child
    child.close()


@pytest.fixture
def child_factory():
    children = []

    def make(**kwargs):
        children.append(ReplChild(**kwargs))
        return children[-1]

    yield make
    for child in children:
        child.close()


def is_result(statement_id):
    return lambda message: message["type"] == "result" and message["id"] == statement_id


# -- startup ---------------------------------------------------------------------------------------


def test_ready_reports_application_and_ui(repl):
    assert repl.ready["type"] == "ready", repl.ready
    assert repl.ready["app_id"].startswith("local-")
    assert repl.ready["spark_ui_url"].startswith("http://")
    with open(repl.pid_path) as pid_file:
        assert int(pid_file.read()) == repl.process.pid


def test_jvm_output_is_relayed_as_log_lines(repl):
    # The JVM prints its log4j banner at start; it must reach both the socket and the log file.
    relayed = [m["line"] for m in repl.messages if m["type"] == "log"]
    assert any("log4j" in line for line in relayed), relayed
    with open(repl.log_path) as log_file:
        assert "log4j" in log_file.read()


def test_hello_reports_idle_session(repl):
    hello = repl.connect()
    assert hello["protocol"] == 2
    assert hello["state"] == "idle"
    assert hello["app_id"] == repl.ready["app_id"]
    assert hello["running"] is None and hello["queued"] == []


# -- Python statements -----------------------------------------------------------------------------


def test_expression_echoes_its_repr(repl):
    statement_id = repl.execute("1 + 1")
    result = repl.result_of(statement_id)
    assert result["state"] == "available"
    assert result["started"] > 1.6e12 and result["completed"] >= result["started"]
    assert result["output"] == {"status": "ok", "execution_count": statement_id,
                                "data": {"text/plain": "2"}}


def test_print_output_comes_before_final_expression(repl):
    code = 'import sys\nprint("hello")\nprint("warn", file=sys.stderr)\n"x" * 3'
    assert repl.text_of(code) == "hello\nwarn\n'xxx'"


def test_statement_without_output_gives_empty_text(repl):
    assert repl.run("unused = 1")["data"] == {"text/plain": ""}


def test_globals_persist_and_spark_is_preloaded(repl):
    repl.run("counter = 40")
    assert repl.text_of("counter + 2") == "42"
    assert repl.text_of("spark.range(5).count()") == "5"
    # runs Python workers, which must use the driver's interpreter
    assert repl.text_of("sc.parallelize([1, 2, 3]).map(lambda v: v * 2).sum()") == "12"


def test_name_error_output_has_livy_shape_without_driver_frames(repl):
    output = repl.run("a = 1\nundefined_name + a")
    assert output["status"] == "error"
    assert output["ename"] == "NameError"
    assert output["evalue"] == "name 'undefined_name' is not defined"
    traceback_lines = output["traceback"]
    assert traceback_lines[0] == "Traceback (most recent call last):\n"
    assert any('File "<stdin>", line 2' in line for line in traceback_lines), traceback_lines
    assert not any("livy_repl" in line for line in traceback_lines), traceback_lines
    assert traceback_lines[-1].startswith("NameError: ")


def test_syntax_error_is_an_error_output(repl):
    output = repl.run("1 +")
    assert output["status"] == "error" and output["ename"] == "SyntaxError"


def test_json_magic(repl):
    repl.run("data = {'a': [1, 2], 'b': None}")
    assert repl.run("%json data")["data"] == {"application/json": {"a": [1, 2], "b": None}}


def test_table_magic_uses_livy_type_names(repl):
    repl.run("rows = [{'id': 1, 'name': 'a', 'score': 1.5, 'ok': True},"
             " {'id': 2, 'name': 'b', 'score': 2.5, 'ok': False}]")
    table = repl.run("%table rows")["data"]["application/vnd.livy.table.v1+json"]
    assert table["headers"] == [
        {"name": "id", "type": "INT_TYPE"},
        {"name": "name", "type": "STRING_TYPE"},
        {"name": "ok", "type": "BOOLEAN_TYPE"},
        {"name": "score", "type": "DOUBLE_TYPE"},
    ]
    assert table["data"] == [[1, "a", True, 1.5], [2, "b", False, 2.5]]


def test_unknown_magic_and_missing_matplot_figure_are_error_outputs(repl):
    output = repl.run("%nosuchmagic x")
    assert output["status"] == "error" and output["ename"] == "UnknownMagic"
    assert "nosuchmagic" in output["evalue"]
    assert repl.run("%matplot plt_that_does_not_exist")["status"] == "error"
    assert repl.text_of("1") == "1"


def test_scala_and_r_run_beside_python(repl):
    output = repl.run('println("hi from Scala"); 20 + 22', kind="spark")
    assert output == {"status": "ok", "execution_count": output["execution_count"],
                      "data": {"text/plain": "hi from Scala\nres0: Int = 42\n"}}, output
    output = repl.run('cat("hi from R\\n")', kind="sparkr")
    assert output == {"status": "ok", "execution_count": output["execution_count"],
                      "data": {"text/plain": "hi from R"}}, output
    assert repl.text_of("'still alive'") == "'still alive'"


def test_duplicate_execute_is_ignored(repl):
    statement_id = repl.execute("runs = globals().get('runs', 0) + 1")
    repl.send(op="execute", id=statement_id, code="runs = 100", kind="pyspark")
    repl.result_of(statement_id)
    assert repl.text_of("runs") == "1"


# -- SQL -------------------------------------------------------------------------------------------


def test_sql_statement_gives_schema_and_rows(repl):
    output = repl.run("select 1 as a, 'x' as b, date'2024-01-02' as d, "
                      "cast(1.5 as decimal(4,2)) as m", kind="sql")
    body = output["data"]["application/json"]
    assert [field["name"] for field in body["schema"]["fields"]] == ["a", "b", "d", "m"]
    assert body["schema"]["fields"][0]["type"] == "integer"
    assert body["data"] == [[1, "x", "2024-01-02", "1.50"]]


def test_sql_rows_are_capped(repl):
    body = repl.run("select id from range(20)", kind="sql")["data"]["application/json"]
    assert body["data"] == [[0], [1], [2], [3], [4]]  # sql_row_cap is 5 for this child


def test_sql_error_is_an_error_output(repl):
    output = repl.run("select * from no_such_table", kind="sql")
    assert output["status"] == "error"
    assert "no_such_table" in output["evalue"]


# -- output limits ---------------------------------------------------------------------------------


def encoded_size(output):
    return len(json.dumps(output, ensure_ascii=False, separators=(",", ":")).encode())


def test_long_text_output_is_truncated_with_a_marker(repl):
    output = repl.run("print('x' * 10000)")
    text = output["data"]["text/plain"]
    assert text.startswith("xxxx")
    assert text.endswith("bytes over the limit of 4096]")
    assert "\n[output truncated: " in text
    assert encoded_size(output) <= 4096


def test_large_json_output_is_replaced_by_a_marker(repl):
    output = repl.run("%json list(range(5000))")
    assert "application/json" not in output["data"]
    assert "application/json output of" in output["data"]["text/plain"]
    assert encoded_size(output) <= 4096


# -- cancel ----------------------------------------------------------------------------------------


def cancel_and_wait(repl, statement_id, within_seconds):
    repl.wait_for(lambda m: m["type"] == "started" and m["id"] == statement_id, 30)
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    repl.send(op="cancel", id=statement_id)
    result = repl.result_of(statement_id, timeout=within_seconds)
    assert time.monotonic() - cancelled_at < within_seconds
    assert result["state"] == "cancelled" and result["output"] is None, result


def test_cancel_interrupts_a_pure_python_loop_and_keeps_globals(repl):
    repl.run("x = 41")
    cancel_and_wait(repl, repl.execute("while True: pass"), within_seconds=10)
    assert repl.text_of("x + 1") == "42"


def test_cancel_of_a_blocked_jvm_call_leaves_py4j_usable(repl):
    # cancelJobGroup cannot stop this (no Spark job), so the interrupt lands inside a py4j call
    cancel_and_wait(repl, repl.execute("sc._jvm.java.lang.Thread.sleep(120000)"), 10)
    assert repl.text_of("spark.range(10).count()") == "10"


def test_cancel_of_a_spark_job(repl):
    code = "sc.parallelize(range(2), 2).map(lambda v: __import__('time').sleep(120)).collect()"
    cancel_and_wait(repl, repl.execute(code), within_seconds=15)
    assert repl.text_of("spark.range(3).count()") == "3"


def test_cancel_of_a_queued_statement_is_immediate(repl):
    first = repl.execute("import time\ntime.sleep(2)\n'first'")
    second = repl.execute("'second'")
    repl.send(op="cancel", id=second)
    result = repl.wait_for(lambda m: m["type"] == "result", 10)
    assert result["id"] == second
    assert result["state"] == "cancelled" and result["output"] is None
    repl.send(op="ack", id=second)
    assert repl.result_of(first)["output"]["data"] == {"text/plain": "'first'"}


# -- progress --------------------------------------------------------------------------------------


def test_progress_is_pushed_while_a_job_runs(repl):
    code = ("sc.parallelize(range(8), 8)"
            ".map(lambda v: __import__('time').sleep(0.4) or v).sum()")
    statement_id = repl.execute(code)
    progress = []
    while True:
        message = repl.wait_for(lambda m: m.get("id") == statement_id, 60)
        if message["type"] == "progress":
            progress.append(message["progress"])
        elif message["type"] == "result":
            break
    repl.send(op="ack", id=statement_id)
    assert message["output"]["data"] == {"text/plain": "28"}
    assert progress, "no progress message"
    assert all(0 <= value <= 1 for value in progress), progress
    assert progress == sorted(progress)


# -- completion ------------------------------------------------------------------------------------


def test_completion_over_globals(repl):
    repl.send(op="complete", id=5, code="x = spa", kind="pyspark", cursor=7)
    reply = repl.wait_for(lambda m: m["type"] == "completion", 10)
    assert reply["id"] == 5 and "spark" in reply["candidates"]
    repl.send(op="complete", id=7, code="print(sc.parallel", cursor=17)  # kind: the session's
    reply = repl.wait_for(lambda m: m["type"] == "completion", 10)
    assert "sc.parallelize(" in reply["candidates"], reply
    repl.send(op="complete", id=6, code="sel", kind="sql", cursor=3)
    assert repl.wait_for(lambda m: m["type"] == "completion", 10) == {
        "type": "completion", "id": 6, "candidates": ["select"]}
    repl.send(op="complete", id=8, code="spark.rea", kind="spark")
    reply = repl.wait_for(lambda m: m["type"] == "completion", 30)
    assert reply["id"] == 8 and "read" in reply["candidates"], reply


# -- reconnect -------------------------------------------------------------------------------------


def test_reconnect_mid_statement_delivers_the_result_later(repl):
    statement_id = repl.execute("import time\ntime.sleep(2)\n'slept'")
    repl.wait_for(lambda m: m["type"] == "started" and m["id"] == statement_id, 30)
    repl.disconnect()
    hello = repl.connect()
    assert hello["state"] == "busy" and hello["running"] == statement_id
    result = repl.result_of(statement_id)
    assert result["output"]["data"] == {"text/plain": "'slept'"}


def test_result_and_logs_produced_while_disconnected_are_sent_after_hello(repl):
    code = ("import time\ntime.sleep(1)\n"
            "sc._jvm.java.lang.System.err.println('marker-while-away')\n'done'")
    statement_id = repl.execute(code)
    repl.wait_for(lambda m: m["type"] == "started" and m["id"] == statement_id, 30)
    repl.disconnect()
    time.sleep(2.5)
    hello = repl.connect()
    assert hello["state"] == "idle"
    replay = repl.messages_within(1.5)
    results = [m for m in replay if m["type"] == "result"]
    assert [r["id"] for r in results] == [statement_id]
    assert results[0]["output"]["data"] == {"text/plain": "'done'"}
    assert any(m["type"] == "log" and m["line"] == "marker-while-away" for m in replay), replay
    repl.send(op="ack", id=statement_id)


def test_unacked_result_is_resent_until_acked(repl):
    statement_id = repl.execute("'keep me'")
    repl.result_of(statement_id, ack=False)
    repl.disconnect()
    repl.connect()
    again = repl.wait_for(is_result(statement_id), 5)
    assert again["output"]["data"] == {"text/plain": "'keep me'"}
    repl.send(op="ack", id=statement_id)
    repl.disconnect()
    repl.connect()
    assert not [m for m in repl.messages_within(1.0) if m["type"] == "result"]


def test_new_connection_replaces_the_old_one(repl):
    old = repl.sock
    repl.sock = None
    repl.connect()
    old.settimeout(5)
    assert old.recv(65536) == b""  # the child closed the replaced connection
    old.close()
    assert repl.text_of("'new connection works'") == "'new connection works'"


# -- authentication (docs/repl-protocol.md, "Authentication") --------------------------------------


def read_until_closed(sock, timeout=15):
    """Everything the child sends on sock until it closes it."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our unread lines still in its buffer
            return received
        if not chunk:
            return received
        received += chunk


def challenge_of(sock):
    """The child's first line on a fresh connection: its challenge."""
    sock.settimeout(10)
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        assert chunk, "the child closed the connection before its challenge"
        line += chunk
    challenge = json.loads(line)
    assert challenge["type"] == "challenge" and challenge["protocol"] == 2, challenge
    assert len(bytes.fromhex(challenge["nonce"])) == 16
    return challenge


def rejections_in_log(repl):
    with open(repl.log_path, errors="replace") as log_file:
        return [line for line in log_file if "rejected a connection on the REPL socket" in line]


@pytest.mark.parametrize("first_message, why", [
    ({"op": "hello"}, "not a proof"),
    ({"op": "execute", "id": 900, "code": "victim = 'changed'", "kind": "pyspark"}, "not a proof"),
    ({"op": "auth", "protocol": 1, "nonce": "0" * 32, "proof": "0" * 64}, "protocol"),
    ({"op": "auth", "protocol": 2, "nonce": "zz", "proof": "0" * 64}, "malformed"),
    ("wrong secret", "wrong proof"),
    ("not json", "not JSON"),
])
def test_a_connection_without_the_secret_is_closed_without_a_reply(repl, first_message, why):
    repl.text_of("victim = 'original'")
    before = len(rejections_in_log(repl))
    intruder = repl.open_socket()
    challenge = challenge_of(intruder)
    if first_message == "wrong secret":
        nonce = secrets.token_hex(16)
        first_message = {"op": "auth", "protocol": 2, "nonce": nonce,
                         "proof": repl.proof("supervisor", challenge["nonce"], nonce,
                                             secret=secrets.token_bytes(32))}
    line = b"{not json\n" if first_message == "not json" else (json.dumps(first_message) + "\n").encode()
    intruder.sendall(line + b'{"op":"execute","id":901,"code":"victim = 1","kind":"pyspark"}\n')
    assert read_until_closed(intruder) == b""  # nothing at all after the challenge
    intruder.close()
    # One log line says why; the real connection and the session's state are untouched.
    rejections = rejections_in_log(repl)[before:]
    assert len(rejections) == 1 and why in rejections[0], rejections
    assert repl.text_of("victim") == "'original'"
    assert not [m for m in repl.messages if m["type"] == "result" and m["id"] in (900, 901)]


def test_a_replayed_proof_is_refused(repl):
    # The proof the supervisor gave on one connection is worthless on the next: fresh nonces.
    sock = repl.open_socket()
    challenge = challenge_of(sock)
    nonce = secrets.token_hex(16)
    auth = {"op": "auth", "protocol": 2, "nonce": nonce,
            "proof": repl.proof("supervisor", challenge["nonce"], nonce)}
    sock.sendall((json.dumps(auth) + "\n").encode())
    sock.settimeout(10)
    assert json.loads(sock.recv(65536))["type"] == "auth"
    sock.close()
    replay = repl.open_socket()
    assert challenge_of(replay)["nonce"] != challenge["nonce"]
    replay.sendall((json.dumps(auth) + "\n").encode())
    assert read_until_closed(replay) == b""
    replay.close()
    repl.connect()  # the intruder connections above replaced nothing that stays broken
    assert repl.text_of("'still served'") == "'still served'"


def test_an_unauthenticated_connection_does_not_displace_the_supervisor(repl):
    repl.connect()
    lurker = repl.open_socket()  # connects, says nothing
    challenge_of(lurker)
    try:
        assert repl.text_of("'served while someone lurks'") == "'served while someone lurks'"
    finally:
        lurker.close()


def test_the_child_proves_the_secret_too(repl):
    # What answers on the socket must know the secret: a supervisor checks the child's proof.
    sock = repl.open_socket()
    challenge = challenge_of(sock)
    nonce = secrets.token_hex(16)
    sock.sendall((json.dumps({"op": "auth", "protocol": 2, "nonce": nonce,
                              "proof": repl.proof("supervisor", challenge["nonce"], nonce)})
                  + "\n").encode())
    sock.settimeout(10)
    answer = json.loads(sock.recv(65536))
    sock.close()
    assert answer["proof"] == repl.proof("repl", challenge["nonce"], nonce)
    assert answer["proof"] != repl.proof("repl", challenge["nonce"], nonce,
                                         secret=secrets.token_bytes(32))
    repl.connect()


# -- children of their own -------------------------------------------------------------------------


def test_startup_failure_sends_fatal_and_exits_non_zero(child_factory):
    child = child_factory(spark_settings={"spark.driver.memory": "abc"})
    hello = child.connect()
    assert hello["state"] == "starting"
    fatal = child.wait_for(lambda m: m["type"] == "fatal", SPARK_START_TIMEOUT_S)
    assert "Invalid maximum heap size" in fatal["msg"], fatal
    assert any(m["type"] == "log" and "Invalid maximum heap size" in m["line"]
               for m in child.messages)
    assert child.wait_exit(30) != 0
    assert not os.path.exists(child.socket_path) and not os.path.exists(child.pid_path)


@pytest.mark.parametrize("how", ["shutdown op", "SIGTERM while busy"])
def test_stopping_removes_socket_and_pid_file(child_factory, how):
    child = child_factory(spark_settings=LIGHT_SPARK_SETTINGS)
    assert child.wait_ready()["type"] == "ready"
    assert os.path.exists(child.socket_path) and os.path.exists(child.pid_path)
    if how == "shutdown op":
        child.send(op="shutdown")
    else:
        statement_id = child.execute("while True: pass")
        child.wait_for(lambda m: m["type"] == "started" and m["id"] == statement_id, 30)
        os.kill(child.process.pid, signal.SIGTERM)
    assert child.wait_exit(30) == 0
    assert not os.path.exists(child.socket_path) and not os.path.exists(child.pid_path)


def test_statement_that_ignores_cancel_gets_the_child_replaced(child_factory):
    child = child_factory(spark_settings=LIGHT_SPARK_SETTINGS,
                          extra_conf={"cancel_kill_after_seconds": 2})
    assert child.wait_ready()["type"] == "ready"
    # a loop catching KeyboardInterrupt is not enough (the interrupt also lands on the outer
    # loop's jump); ignoring SIGINT for the rest of the statement is
    stubborn = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    statement_id = child.execute(stubborn)
    child.wait_for(lambda m: m["type"] == "started" and m["id"] == statement_id, 30)
    child.send(op="cancel", id=statement_id)
    result = child.wait_for(is_result(statement_id), 20)
    assert result["state"] == "cancelled"
    fatal = child.wait_for(lambda m: m["type"] == "fatal", 10)
    assert "did not stop" in fatal["msg"]
    assert child.wait_exit(30) != 0


def test_proxy_user_runs_the_driver_as_that_user(child_factory):
    """The session's proxy user reaches Spark with spark-submit's --proxy-user semantics."""
    child = child_factory(spark_settings=LIGHT_SPARK_SETTINGS, extra_conf={"proxy_user": "alice"})
    assert child.wait_ready()["type"] == "ready"
    statement_id = child.execute("sc.sparkUser()")
    result = child.result_of(statement_id)
    assert result["output"]["data"]["text/plain"] == "'alice'", result
    assert result["started"] > 0 and result["completed"] >= result["started"]
