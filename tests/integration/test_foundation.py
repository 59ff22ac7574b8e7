"""The foundation: mod_livy answers /version and an empty /sessions under both MPMs, speaks JSON
errors, and survives its database going away and coming back."""

import re
import subprocess
import time

import livy_harness as h


def assert_json_error(r, status):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body.get("msg"), str) and body["msg"], body
    return body["msg"]


def test_version_answers_json_with_a_version(server):
    r = server.get("/version")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["version"], str) and body["version"]


def test_the_module_logs_its_version_at_startup(server):
    body = server.get("/version").json()
    lines = [line for line in server.error_log_lines() if "livy: mod_livy/" in line]
    assert lines, server.log_tail()
    assert "[livy:notice]" in lines[-1], lines[-1]
    assert (f"livy: {body['server']} configured (database schema version "
            f"{body['schemaVersion']})") in lines[-1], (lines[-1], body)


def test_the_supervisor_tells_its_version_and_usage():
    out = subprocess.run([str(h.ROOT / "supervisor" / "livy-supervisor"), "--version"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"livy-supervisor \d+\.\d+\.\d+ \(database schema version \d+, "
                        r"REPL protocol \d+\)\n", out.stdout), out.stdout
    usage = subprocess.run([str(h.ROOT / "supervisor" / "livy-supervisor"), "--help"],
                           capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "--version" in usage.stdout and "--config FILE" in usage.stdout
    bad = subprocess.run([str(h.ROOT / "supervisor" / "livy-supervisor"), "--nope"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "usage:" in bad.stderr


def test_sessions_on_an_empty_database_is_an_empty_page(server):
    r = server.get("/sessions")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"from": 0, "total": 0, "sessions": []}


def test_sessions_answers_the_same_across_many_requests(server):
    # Enough requests to reach several workers and pooled connections.
    for _ in range(50):
        r = server.get("/sessions")
        assert r.status_code == 200, r.text
        assert r.json() == {"from": 0, "total": 0, "sessions": []}


def test_unknown_route_is_a_json_404(server):
    assert_json_error(server.get("/no/such/route"), 404)


def test_graceful_restart_keeps_serving(server):
    pid = server.pid
    server.graceful()
    assert server.pid == pid
    r = server.get("/sessions")
    assert r.status_code == 200, r.text


def wait_for_streak(server, path, status, streak, timeout):
    """Polls path until `streak` consecutive answers have `status`; returns the answers seen."""
    seen = []
    run = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = server.get(path)
        seen.append(r.status_code)
        run = run + 1 if r.status_code == status else 0
        if run >= streak:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no {streak} consecutive {status}s on {path} within {timeout}s: {seen[-40:]}")


def test_database_down_gives_503_and_recovers_without_restart(livy_server, private_pg, mpm):
    server = livy_server(mpm=mpm, db=private_pg)
    # While the database is down the module logs that it cannot connect: expected here.
    server.allow_errors(r"(?i)database|postgres|connect|server closed|terminat|pool|livy")
    pid = server.pid
    assert server.get("/sessions").status_code == 200

    private_pg.stop("fast")
    for _ in range(10):
        msg = assert_json_error(server.get("/sessions"), 503)
    assert msg

    private_pg.start()
    seen = wait_for_streak(server, "/sessions", 200, streak=20, timeout=30)
    assert server.get("/sessions").json() == {"from": 0, "total": 0, "sessions": []}
    assert server.pid == pid and h.process_alive(pid), "httpd was restarted"
    assert set(seen) <= {200, 503}, seen


def test_database_without_schema_gives_503_saying_to_migrate(livy_server, pg, mpm):
    dbname = f"livy_empty_{mpm}"
    pg.psql(f'DROP DATABASE IF EXISTS "{dbname}"', db="postgres")
    pg.create_database(dbname, migrate=False)
    server = livy_server(mpm=mpm, conninfo=pg.conninfo(dbname))
    server.allow_errors(r"(?i)schema|migrat")
    msg = assert_json_error(server.get("/sessions"), 503)
    assert "migrat" in msg.lower(), msg
    # The error log tells the operator what to run.
    assert any("--migrate" in line for line in server.error_log_lines()), server.log_tail()
