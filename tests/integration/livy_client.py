"""What the end-to-end tests share: a Livy client over the harness's server (HTTP plus the few
facts only the database knows), Spark settings that start fast, and managed-supervisor servers
with a database of their own. Used by test_sessions_e2e, test_recovery and test_pylivy."""

from __future__ import annotations

import re
import time

import pytest
import requests

import livy_harness as h

SESSION_STATES = {"not_started", "starting", "recovering", "idle", "busy", "shutting_down",
                  "error", "dead", "killed", "success"}
ENDED_STATES = {"error", "dead", "killed", "success"}
STATEMENT_STATES = {"waiting", "running", "available", "cancelling", "cancelled"}
SPARK_START_TIMEOUT = 240  # several cold Sparks starting at once on two busy cores

# Faster Spark starts on a small box: C1 only and the serial collector save a third of a cold
# start; no UI where the test does not look at it.
JAVA_FAST = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
FAST_CONF = {"spark.driver.extraJavaOptions": JAVA_FAST, "spark.ui.enabled": "false",
             "spark.sql.shuffle.partitions": "2"}



# ------------------------------------------------------------------ a client over HTTP


class Client:
    """The Livy API of one server as a client uses it, with the checks every answer must pass."""

    def __init__(self, server: h.LivyServer, db: h.PgCluster, dbname: str):
        self.server = server
        self.db = db
        self.dbname = dbname

    # -- plain calls
    def create(self, **body) -> dict:
        r = self.server.post("/sessions", json=body)
        assert r.status_code == 201, (r.status_code, r.text)
        s = r.json()
        assert r.headers["Location"] == f"/sessions/{s['id']}"
        assert s["state"] in {"not_started", "starting"}, s
        return s

    def session(self, sid: int) -> dict:
        r = self.server.get(f"/sessions/{sid}")
        assert r.status_code == 200, (r.status_code, r.text)
        s = r.json()
        assert s["state"] in SESSION_STATES, s
        return s

    def listed(self) -> dict[int, dict]:
        r = self.server.get("/sessions?size=1000")
        assert r.status_code == 200, r.text
        out = {s["id"]: s for s in r.json()["sessions"]}
        assert all(s["state"] in SESSION_STATES for s in out.values()), out
        return out

    def submit(self, sid: int, code: str, kind: str | None = "pyspark") -> dict:
        body = {"code": code} if kind is None else {"code": code, "kind": kind}
        r = self.server.post(f"/sessions/{sid}/statements", json=body)
        assert r.status_code == 201, (r.status_code, r.text)
        st = r.json()
        assert r.headers["Location"] == f"/sessions/{sid}/statements/{st['id']}"
        assert st["state"] in STATEMENT_STATES, st
        return st

    def statement(self, sid: int, stid: int) -> dict:
        r = self.server.get(f"/sessions/{sid}/statements/{stid}")
        assert r.status_code == 200, (r.status_code, r.text)
        st = r.json()
        assert st["state"] in STATEMENT_STATES, st
        assert isinstance(st["progress"], float) and 0.0 <= st["progress"] <= 1.0, st
        return st

    def cancel(self, sid: int, stid: int) -> None:
        r = self.server.post(f"/sessions/{sid}/statements/{stid}/cancel")
        assert r.status_code == 200 and r.json() == {"msg": "canceled"}, (r.status_code, r.text)

    def log(self, sid: int) -> list[str]:
        r = self.server.get(f"/sessions/{sid}/log?from=0&size=-1")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["log"]

    # -- waiting
    def diagnose(self, sid: int) -> str:
        try:
            r = self.server.get(f"/sessions/{sid}/log?size=40")
            log = "\n".join(r.json()["log"]) if r.status_code == 200 else f"(log: {r.status_code})"
        except (requests.RequestException, ValueError, KeyError) as e:
            log = f"(log: {e!r})"
        return f"\n---- session {sid} log (tail)\n{log}\n{self.server.log_tail(25)}"

    def wait_session(self, sid: int, states, timeout: float = SPARK_START_TIMEOUT,
                     seen: list | None = None, interval: float = 0.2) -> dict:
        states = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        while True:
            s = self.session(sid)
            if seen is not None and (not seen or seen[-1] != s["state"]):
                seen.append(s["state"])
            if s["state"] in states:
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"session {sid} is {s['state']}, not {'/'.join(sorted(states))}, "
                                     f"after {timeout}s{self.diagnose(sid)}")
            if s["state"] in ENDED_STATES:
                raise AssertionError(f"session {sid} ended ({s['state']}) while waiting for "
                                     f"{'/'.join(sorted(states))}{self.diagnose(sid)}")
            time.sleep(interval)

    def wait_listed_state(self, sid: int, states, timeout: float) -> dict:
        """Waits through GET /sessions only (which is not a heartbeat)."""
        states = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        while True:
            s = self.listed().get(sid)
            assert s is not None, f"session {sid} left the list"
            if s["state"] in states:
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"session {sid} is {s['state']} after {timeout}s{self.diagnose(sid)}")
            time.sleep(0.25)

    def wait_statement(self, sid: int, stid: int, states=("available",), timeout: float = 60,
                       seen: list | None = None, interval: float = 0.02) -> dict:
        states = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        while True:
            st = self.statement(sid, stid)
            if seen is not None and (not seen or seen[-1] != st["state"]):
                seen.append(st["state"])
            if st["state"] in states:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"statement {sid}/{stid} is {st['state']}, not "
                                     f"{'/'.join(sorted(states))}, after {timeout}s{self.diagnose(sid)}")
            time.sleep(interval)

    def run(self, sid: int, code: str, kind: str | None = "pyspark", timeout: float = 60) -> dict:
        st = self.wait_statement(sid, self.submit(sid, code, kind)["id"], timeout=timeout)
        assert st["output"] is not None, st
        return st

    def text(self, sid: int, code: str, timeout: float = 60) -> str:
        out = self.run(sid, code, timeout=timeout)["output"]
        assert out["status"] == "ok", out
        return out["data"]["text/plain"]

    # -- what a client cannot see
    def db_value(self, sql: str):
        rows = self.db.psql(sql, db=self.dbname)
        return rows[0][0] if rows else None

    def repl_pid(self, sid: int) -> int:
        pid = self.db_value(f"SELECT repl_pid FROM sessions WHERE id = {int(sid)}")
        assert pid, f"session {sid} has no REPL pid"
        return int(pid)

    def ended_ms(self, sid: int) -> int:
        v = self.db_value(f"SELECT (extract(epoch FROM ended_at) * 1000)::bigint FROM sessions "
                          f"WHERE id = {int(sid)}")
        assert v is not None, f"session {sid} has no ended_at"
        return int(v)

    def created_ms(self, sid: int) -> int:
        return int(self.db_value(f"SELECT (extract(epoch FROM created_at) * 1000)::bigint "
                                 f"FROM sessions WHERE id = {int(sid)}"))


def assert_processes_gone(pids: list[int], timeout: float, what: str) -> None:
    left = h.wait_gone(pids, timeout)
    assert not left, f"{what}: still running after {timeout}s: " + "; ".join(
        f"{p} {h.process_cmdline(p)[:120]}" for p in left)


def spark_log_lines(log: list[str]) -> list[str]:
    """Lines Spark's driver (log4j) wrote, as opposed to the REPL driver's and the supervisor's."""
    return [line for line in log
            if re.match(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARN|ERROR) (?!ReplDriver)\w+:", line)
            or "log4j" in line]


# ------------------------------------------------------------------ servers and sessions


def start_server(work_dir, pg, label: str, dbname: str, mpm: str, supervisor_conf: dict):
    pg.create_database(dbname)
    factory = h.ServerFactory(work_dir, pg, label)
    try:
        server = factory(mpm=mpm, supervisor="managed", dbname=dbname, supervisor_conf=supervisor_conf)
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    return factory, server


def finish_server(factory) -> None:
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


class UserClient(Client):
    """A Client whose requests carry one user's credentials (HTTP Basic, the harness's
    password for that user)."""

    def __init__(self, server: h.LivyServer, db: h.PgCluster, dbname: str, user: str):
        super().__init__(server, db, dbname)
        self.user = user
        self.server = _AuthServer(server, (user, h.password(user)))


class _AuthServer:
    """A LivyServer whose requests carry auth unless they name their own."""

    def __init__(self, server: h.LivyServer, auth):
        self._server, self._auth = server, auth

    def __getattr__(self, name):
        return getattr(self._server, name)

    def request(self, method, path, **kw):
        kw.setdefault("auth", self._auth)
        return self._server.request(method, path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)
