"""The HTTP side of Livy's batch API (issue 10, ../shared/LIVY-API.md "Batches"): every route with
its status codes, Location headers, shapes in Livy's key order and the rows and notifications it
leaves in PostgreSQL; the bad-input table (4xx {"msg": ...}, nothing stored); security (owners,
admission, view and modify access, CSRF, impersonation, the per-user and starting limits that
sessions and batches share); and LivyBatchAllowedPaths.

No supervisor runs here: a new batch stays `starting` and unclaimed, which is what the API alone
must produce. What a supervisor would write (a claim, a state, log lines) is written with SQL
where a route reads it.

One httpd per MPM serves the module; its mounts:
  /open         anonymous, no access control, impersonation Off, and two LivyBatchAllowedPaths
                lines: /opt/jobs and /srv/spark//apps/ (canonical: /srv/spark/apps)
  /open/narrow  the same, with LivyBatchAllowedPaths /srv/other (a section's list replaces)
  /             Basic auth, access control, impersonation On, no LivyBatchAllowedPaths
  /csrf         the same, plus LivyCsrfProtection On
  /noimp        the same, but LivyImpersonation Off
  /limits       the same, plus LivyMaxSessionsPerUser 2
  /burst        the same, plus LivyMaxStartingSessions 3
Users: alice and bob (allowed), carol (superuser), erin (LivyViewUsers), frank
(LivyModifyUsers), dave (authenticates, but is not allowed in).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import quote

import pytest

import livy_harness as h

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
BATCH_KEYS = ["id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"]
APP_INFO_KEYS = ["driverLogUrl", "sparkUiUrl", "executorLogUrls"]
BATCH_STATES = {"starting", "running", "success", "dead", "killed"}
ALLOWED_DIRS = "LivyBatchAllowedPaths (/opt/jobs, /srv/spark/apps)"
OPEN = "/open"


# ------------------------------------------------------------------ the server


@pytest.fixture(scope="module")
def htpasswd(work_dir):
    return h.write_htpasswd(work_dir / "batches-htpasswd", USERS)


def batches_conf(htpasswd) -> str:
    mount = h.policy_mount
    return (
        h.basic_auth_conf(htpasswd, """
            LivyAccessControl On
            LivyAllowedUsers alice bob
            LivySuperusers carol
            LivyViewUsers erin
            LivyModifyUsers frank
            LivyImpersonation On
            """, error_documents=True)
        + mount("/csrf", "    LivyCsrfProtection On")
        + mount("/noimp", "    LivyImpersonation Off")
        + mount("/limits", "    LivyMaxSessionsPerUser 2")
        + mount("/burst", "    LivyMaxStartingSessions 3")
        + mount("/open", "    AuthType None\n    Require all granted\n    LivyAccessControl Off\n"
                         "    LivyImpersonation Off\n    LivyBatchAllowedPaths /opt/jobs\n"
                         "    LivyBatchAllowedPaths /srv/spark//apps/")
        + mount("/open/narrow", "    LivyBatchAllowedPaths /srv/other")
    )


@pytest.fixture(scope="module", params=h.selected_mpms())
def batch_server(request, work_dir, pg, htpasswd):
    yield from h.module_server(work_dir, pg, f"batches-{request.param}", allow=h.AUTH_FAILURE_LINES,
                               mpm=request.param, extra_conf=batches_conf(htpasswd))


@pytest.fixture
def srv(batch_server, clean_db):
    """The module's server on an emptied database; the test fails on new unexpected error-log lines."""
    yield from h.error_log_checked(batch_server)


# ------------------------------------------------------------------ helpers


call = h.request_as  # call(srv, user, method, path, **requests_kw): one request as user (None: none)


def is_json(r) -> bool:
    return r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"


def ok(r, status=200):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    assert is_json(r), r.headers
    return r.json()


def refused(r, status, *words):
    """The message of a JSON error {"msg": ...} with the given status, holding every word."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    assert is_json(r), (r.headers, r.text[:300])
    body = r.json()
    assert isinstance(body, dict) and list(body) == ["msg"], body
    assert isinstance(body["msg"], str) and body["msg"], body
    for w in words:
        assert w in body["msg"], (w, body["msg"])
    return body["msg"]


def check_batch(b: dict) -> dict:
    """Livy's batch object: every key, in order, with the right types."""
    assert list(b) == BATCH_KEYS, list(b)
    assert isinstance(b["id"], int) and not isinstance(b["id"], bool) and b["id"] >= 0
    for k in ("name", "owner", "proxyUser", "appId"):
        assert b[k] is None or isinstance(b[k], str), (k, b[k])
    assert b["state"] in BATCH_STATES, b["state"]
    assert list(b["appInfo"]) == APP_INFO_KEYS, b["appInfo"]
    assert b["appInfo"]["sparkUiUrl"] is None and b["appInfo"]["executorLogUrls"] is None
    assert isinstance(b["log"], list) and all(isinstance(x, str) for x in b["log"]), b["log"]
    return b


def create(srv, body=None, user=None, mount=OPEN, query="", headers=None):
    """POST <mount>/batches: 201, Location and the batch, checked."""
    r = call(srv, user, "POST", f"{mount}/batches{query}",
             json={"file": "/opt/jobs/etl.py"} if body is None else body, headers=headers)
    b = check_batch(ok(r, 201))
    assert r.headers["Location"] == f"{mount}/batches/{b['id']}"
    return b


def row(srv, sql):
    rows = srv.db.psql(sql)
    assert len(rows) == 1, rows
    return rows[0]


def add_log_lines(srv, bid, lines, start=0):
    """Log lines as a supervisor writes them: seq from `start`, next_log_seq advanced with them."""
    values = ", ".join(f"({bid}, {start + i}, '{line}')" for i, line in enumerate(lines))
    srv.db.psql(f"BEGIN; INSERT INTO batch_log (batch_id, seq, line) VALUES {values}; "
                f"UPDATE batches SET next_log_seq = {start + len(lines)} WHERE id = {bid}; COMMIT;")


def end_batch(srv, bid, state="dead"):
    srv.db.psql(f"UPDATE batches SET state = '{state}', ended_at = now() WHERE id = {bid}")


def batch_total(srv) -> int:
    return int(row(srv, "SELECT listed FROM batch_count")[0])


# ------------------------------------------------------------------ POST /batches


def test_create_batch_is_201_with_livy_shape_and_an_unclaimed_row(srv):
    r = call(srv, None, "POST", "/open/batches", json={"file": "/opt/jobs/etl.py"})
    b = check_batch(ok(r, 201))
    assert r.headers["Location"] == f"/open/batches/{b['id']}"
    assert b == {"id": b["id"], "name": None, "owner": None, "proxyUser": None, "state": "starting",
                 "appId": None,
                 "appInfo": {"driverLogUrl": None, "sparkUiUrl": None, "executorLogUrls": None},
                 "log": []}
    # The row the supervisors claim: starting, unclaimed, nothing asked of it yet.
    assert row(srv, "SELECT state, supervisor_id, deleted, stop_requested, ended_at, file, class_name, "
                    f"args::text, conf::text, jars::text FROM batches WHERE id = {b['id']}") == \
        ("starting", None, "f", "f", None, "/opt/jobs/etl.py", None, "[]", "{}", "[]")
    assert batch_total(srv) == 1
    # The Location answers the same object; the session counter is untouched.
    assert ok(call(srv, None, "GET", r.headers["Location"])) == b
    assert row(srv, "SELECT count(*) FROM sessions") == ("0",)


def test_create_batch_stores_every_field(srv):
    body = {
        "file": "file:///opt/jobs/etl.jar", "className": "org.example.Etl",
        "args": ["--day", "2026-01-01", "", "a b"], "proxyUser": "someone", "name": "nightly-etl",
        "jars": ["/opt/jobs/lib/a.jar", "hdfs:///lib/b.jar"], "pyFiles": ["local:/srv/spark/apps/x.py"],
        "files": ["s3a://bucket/f.txt"], "archives": ["/opt/jobs/env.tar.gz#env"],
        "driverMemory": "2g", "driverCores": 2, "executorMemory": "4g", "executorCores": 3,
        "numExecutors": 5, "queue": "etl",
        "conf": {"spark.sql.shuffle.partitions": 8, "spark.speculation": True, "spark.memory.fraction": 0.6,
                 "spark.app.note": "text"},
    }
    b = create(srv, body)
    # impersonation is off on /open: proxyUser ignored and null, as in Livy
    assert (b["name"], b["owner"], b["proxyUser"], b["state"]) == ("nightly-etl", None, None, "starting")
    got = row(srv, "SELECT name, proxy_user, file, class_name, args::text, driver_memory, driver_cores, "
                   "executor_memory, executor_cores, num_executors, queue, conf::text, jars::text, "
                   f"py_files::text, files::text, archives::text FROM batches WHERE id = {b['id']}")
    assert got[:4] == ("nightly-etl", None, "file:///opt/jobs/etl.jar", "org.example.Etl")
    assert json.loads(got[4]) == body["args"]
    assert got[5:11] == ("2g", "2", "4g", "3", "5", "etl")
    # conf values coerced to strings, as a session's are
    assert json.loads(got[11]) == {"spark.sql.shuffle.partitions": "8", "spark.speculation": "true",
                                   "spark.memory.fraction": "0.6", "spark.app.note": "text"}
    assert [json.loads(x) for x in got[12:]] == [body["jars"], body["pyFiles"], body["files"], body["archives"]]


def test_create_batch_null_fields_mean_unset(srv):
    body = {k: None for k in ("className", "args", "proxyUser", "name", "jars", "pyFiles", "files",
                              "archives", "driverMemory", "driverCores", "executorMemory", "executorCores",
                              "numExecutors", "queue", "conf")}
    body["file"] = "hdfs:///apps/etl.jar"
    b = create(srv, body)
    assert b["name"] is None
    assert row(srv, "SELECT class_name, args::text, driver_cores, conf::text, jars::text FROM batches "
                    f"WHERE id = {b['id']}") == (None, "[]", "0", "{}", "[]")


def test_batch_body_is_json_whatever_the_content_type(srv):
    for headers in ({"Content-Type": "text/plain"}, {"Content-Encoding": "UTF-8", "Content-Type": "application/json"},
                    {}):
        r = call(srv, None, "POST", "/open/batches", data=b'{"file": "gs://b/x.py"}', headers=headers)
        check_batch(ok(r, 201))


def test_batch_ids_count_apart_from_session_ids(srv):
    a = create(srv)
    s = ok(call(srv, None, "POST", "/open/sessions", json={}), 201)
    b = create(srv)
    assert b["id"] == a["id"] + 1   # the session in between took no batch id
    assert row(srv, "SELECT last_value FROM batches_id_seq") == (str(b["id"]),)
    assert row(srv, "SELECT last_value FROM sessions_id_seq") == (str(s["id"]),)
    assert row(srv, "SELECT count(*) FROM batches") == ("2",)


def test_duplicate_live_batch_name_is_400_and_an_ended_batch_frees_it(srv):
    first = create(srv, {"file": "/opt/jobs/a.py", "name": "daily"})
    before = srv.db.snapshot()
    refused(call(srv, None, "POST", "/open/batches", json={"file": "/opt/jobs/b.py", "name": "daily"}), 400,
            "daily", "batch")
    assert srv.db.snapshot() == before
    # A session may have the same name: names are unique per kind of thing.
    assert ok(call(srv, None, "POST", "/open/sessions", json={"name": "daily"}), 201)["name"] == "daily"
    end_batch(srv, first["id"], "success")
    second = create(srv, {"file": "/opt/jobs/b.py", "name": "daily"})
    # By name, the live one answers.
    assert ok(call(srv, None, "GET", "/open/batches/daily"))["id"] == second["id"]
    end_batch(srv, second["id"], "dead")
    assert ok(call(srv, None, "GET", "/open/batches/daily"))["id"] == second["id"]  # then the newest


# ------------------------------------------------------------------ GET /batches


def test_list_batches_creation_order_paging_and_total(srv):
    ids = [create(srv, {"file": "/opt/jobs/x.py", "name": f"b{i}"})["id"] for i in range(5)]
    body = ok(call(srv, None, "GET", "/open/batches"))
    assert list(body) == ["from", "total", "sessions"]
    assert body["from"] == 0 and body["total"] == 5
    assert [b["id"] for b in body["sessions"]] == ids
    for b in body["sessions"]:
        check_batch(b)
    page = ok(call(srv, None, "GET", "/open/batches?from=2&size=2"))
    assert (page["from"], page["total"]) == (2, 5)
    assert [b["name"] for b in page["sessions"]] == ["b2", "b3"]
    assert ok(call(srv, None, "GET", "/open/batches?size=0")) == {"from": 0, "total": 5, "sessions": []}
    assert ok(call(srv, None, "GET", "/open/batches?from=1000")) == {"from": 1000, "total": 5, "sessions": []}
    # The sessions' listing is another list.
    assert ok(call(srv, None, "GET", "/open/sessions"))["total"] == 0
    # Deleted batches leave the listing and its total.
    assert ok(call(srv, None, "DELETE", f"/open/batches/{ids[1]}")) == {"msg": "deleted"}
    body = ok(call(srv, None, "GET", "/open/batches"))
    assert body["total"] == 4 == batch_total(srv)
    assert [b["id"] for b in body["sessions"]] == ids[:1] + ids[2:]


def test_list_batches_size_defaults_to_100(srv):
    srv.db.psql("INSERT INTO batches (file) SELECT 'hdfs:///x.jar' FROM generate_series(1, 130)")
    body = ok(call(srv, None, "GET", "/open/batches"))
    assert body["total"] == 130 and len(body["sessions"]) == 100
    ids = [b["id"] for b in body["sessions"]]
    assert ids == sorted(ids)
    rest = ok(call(srv, None, "GET", "/open/batches?from=100"))
    assert rest["total"] == 130 and len(rest["sessions"]) == 30


def listing_text(body_from, total, objects) -> bytes:
    """A listing as it must be byte for byte: the objects as the per-id GETs wrote them."""
    return (f'{{"from":{body_from},"total":{total},"sessions":['.encode()
            + b",".join(objects) + b"]}")


def test_list_batches_pages_over_many_rows_are_the_batches_byte_for_byte(srv):
    awkward = "tab\there \"q\" back\\slash /slash \x01\x1f\x7f caf\u00e9 \U0001F600"
    text = "E'" + "".join(f"\\U{ord(c):08x}" for c in awkward) + "'"
    srv.db.psql(
        "INSERT INTO batches (file, name, owner, proxy_user, state, app_id, driver_log_url)"
        f" SELECT '/opt/jobs/x.py', CASE WHEN g % 3 = 0 THEN {text} || g END, 'u' || (g % 4),"
        " CASE WHEN g % 5 = 0 THEN 'p' END, CASE WHEN g % 2 = 0 THEN 'running' ELSE 'starting' END,"
        " 'application_' || g, CASE WHEN g % 4 = 0 THEN 'http://nm/' || g END"
        " FROM generate_series(1, 230) g;"
        " UPDATE batches SET deleted = true WHERE id % 9 = 0")
    srv.db.psql("INSERT INTO batch_log (batch_id, seq, line) SELECT b.id, g,"
                f" 'line ' || g || ' ' || {text} FROM batches b, generate_series(0, 13) g"
                " WHERE g < b.id % 15")
    ids = [int(r[0]) for r in srv.db.psql("SELECT id FROM batches WHERE NOT deleted ORDER BY id")]
    total = len(ids)
    assert total == batch_total(srv) > 200
    single = {bid: call(srv, None, "GET", f"/open/batches/{bid}").content for bid in ids}
    for start, size in [(0, 100), (100, 100), (200, 100), (7, 13), (total, 2)]:
        r = call(srv, None, "GET", f"/open/batches?from={start}&size={size}")
        ok(r)
        assert r.content == listing_text(start, total, [single[i] for i in ids[start:start + size]])
    for b in ok(call(srv, None, "GET", "/open/batches"))["sessions"]:
        check_batch(b)
        n = b["id"] % 15
        assert b["log"] == [f"line {g} {awkward}" for g in range(max(0, n - 10), n)]


def test_list_batches_shows_each_user_the_logs_a_get_shows_them(srv):
    mine = {u: create(srv, {"file": "hdfs:///apps/etl.py"}, user=u, mount="")["id"]
            for u in ("alice", "bob")}
    proxied = create(srv, {"file": "hdfs:///apps/etl.py", "proxyUser": "bob"}, user="carol", mount="")["id"]
    for bid in (*mine.values(), proxied):
        add_log_lines(srv, bid, [f"{bid}-{i}" for i in range(12)])
    ids = sorted((*mine.values(), proxied))
    for user in ("alice", "bob", "carol", "erin", "frank"):
        single = [call(srv, user, "GET", f"/batches/{bid}").content for bid in ids]
        r = call(srv, user, "GET", "/batches")
        ok(r)
        assert r.content == listing_text(0, 3, single), user
        logs = {b["id"]: b["log"] for b in r.json()["sessions"]}
        full = {bid: [f"{bid}-{i}" for i in range(2, 12)] for bid in ids}
        if user == "alice":
            assert logs == {**full, mine["bob"]: [], proxied: []}
        elif user == "bob":  # his own, and the one he is the proxy user of
            assert logs == {**full, mine["alice"]: []}
        else:
            assert logs == full
    # The tail follows a trim.
    srv.db.psql(f"DELETE FROM batch_log WHERE batch_id = {proxied} AND seq < 9")
    assert {b["id"]: b["log"] for b in ok(call(srv, "carol", "GET", "/batches"))["sessions"]}[proxied] == \
        [f"{proxied}-{i}" for i in range(9, 12)]


# ------------------------------------------------------------------ GET /batches/{id}, /state


def test_get_batch_by_id_and_by_name_with_the_last_10_log_lines(srv):
    b = create(srv, {"file": "/opt/jobs/etl.py", "name": "by-name"})
    other = create(srv, {"file": "/opt/jobs/etl.py", "name": "other"})
    add_log_lines(srv, b["id"], [f"line {i}" for i in range(15)])
    srv.db.psql(f"UPDATE batches SET state = 'running', app_id = 'application_1_0001', "
                f"driver_log_url = 'http://nm:8042/driver' WHERE id = {b['id']}")
    by_id = check_batch(ok(call(srv, None, "GET", f"/open/batches/{b['id']}")))
    assert ok(call(srv, None, "GET", "/open/batches/by-name")) == by_id
    assert by_id == {"id": b["id"], "name": "by-name", "owner": None, "proxyUser": None, "state": "running",
                     "appId": "application_1_0001",
                     "appInfo": {"driverLogUrl": "http://nm:8042/driver", "sparkUiUrl": None,
                                 "executorLogUrls": None},
                     "log": [f"line {i}" for i in range(5, 15)]}
    assert ok(call(srv, None, "GET", "/open/batches/other"))["id"] == other["id"]
    assert ok(call(srv, None, "GET", f"/open/batches/{other['id']}"))["log"] == []
    listed = {x["id"]: x for x in ok(call(srv, None, "GET", "/open/batches"))["sessions"]}
    assert listed[b["id"]] == by_id


def test_unknown_batch_is_404_naming_it(srv):
    for suffix in ("", "/state", "/log"):
        assert refused(call(srv, None, "GET", f"/open/batches/7{suffix}"), 404) == "Batch '7' not found."
        refused(call(srv, None, "GET", f"/open/batches/no-such-batch{suffix}"), 404, "no-such-batch")
    assert refused(call(srv, None, "DELETE", "/open/batches/7"), 404) == "Batch '7' not found."
    # A session's id is no batch's.
    s = ok(call(srv, None, "POST", "/open/sessions", json={"name": "sess"}), 201)
    refused(call(srv, None, "GET", f"/open/batches/{s['id']}"), 404, "Batch")
    refused(call(srv, None, "GET", "/open/batches/sess"), 404, "sess")


def test_batch_state(srv):
    b = create(srv, {"file": "/opt/jobs/x.py", "name": "st"})
    body = ok(call(srv, None, "GET", f"/open/batches/{b['id']}/state"))
    assert list(body) == ["id", "state"]
    assert body == {"id": b["id"], "state": "starting"}
    assert ok(call(srv, None, "GET", "/open/batches/st/state")) == body
    for state in ("running", "success", "dead", "killed"):
        srv.db.psql(f"UPDATE batches SET state = '{state}' WHERE id = {b['id']}")
        assert ok(call(srv, None, "GET", f"/open/batches/{b['id']}/state")) == {"id": b["id"], "state": state}


# ------------------------------------------------------------------ GET /batches/{id}/log


def test_batch_log_paging(srv):
    b = create(srv, {"file": "/opt/jobs/x.py", "name": "logged"})
    bid = b["id"]
    lines = [f"spark-submit line {i}" for i in range(30)]
    add_log_lines(srv, bid, lines)
    log = lambda q="": ok(call(srv, None, "GET", f"/open/batches/{bid}/log{q}"))  # noqa: E731
    body = log()
    assert list(body) == ["id", "from", "total", "log"]
    assert body == {"id": bid, "from": 0, "total": 30, "log": lines}   # the tail of 100: all
    assert log("?size=10") == {"id": bid, "from": 20, "total": 30, "log": lines[20:]}  # the tail
    assert log("?from=5&size=3")["log"] == lines[5:8]
    assert log("?from=5")["log"] == lines[5:]
    assert log("?size=-1") == {"id": bid, "from": 0, "total": 30, "log": lines}
    assert log("?from=28&size=-1")["log"] == lines[28:]
    assert log("?from=30") == {"id": bid, "from": 30, "total": 30, "log": []}
    assert log("?from=99&size=5")["log"] == []
    assert log("?size=0")["log"] == []
    # by name, and /logs
    assert ok(call(srv, None, "GET", "/open/batches/logged/log?size=2"))["log"] == lines[28:]
    assert ok(call(srv, None, "GET", f"/open/batches/{bid}/logs?from=1&size=1"))["log"] == lines[1:2]
    # Airflow's LivyHook pages while from <= total
    got, start = [], 0
    while True:
        page = log(f"?from={start}&size=7")
        got += page["log"]
        start += 7
        if start > page["total"]:
            break
    assert got == lines
    # Trimmed lines (the supervisor drops the oldest): the page counts what is kept.
    srv.db.psql(f"DELETE FROM batch_log WHERE batch_id = {bid} AND seq < 10")
    assert log("?size=-1") == {"id": bid, "from": 0, "total": 20, "log": lines[10:]}
    # Another batch's log is its own.
    other = create(srv)
    assert log_of(srv, other["id"]) == {"id": other["id"], "from": 0, "total": 0, "log": []}


def log_of(srv, bid):
    return ok(call(srv, None, "GET", f"/open/batches/{bid}/log"))


# ------------------------------------------------------------------ DELETE /batches/{id}


def test_delete_an_unclaimed_batch_kills_it_and_it_is_gone(srv):
    b = create(srv, {"file": "/opt/jobs/x.py", "name": "doomed"})
    add_log_lines(srv, b["id"], ["a", "b"])
    srv.db.psql(f"UPDATE batches SET state_changed_at = now() - interval '1 hour' WHERE id = {b['id']}")
    assert ok(call(srv, None, "DELETE", "/open/batches/doomed")) == {"msg": "deleted"}
    for suffix in ("", "/state", "/log"):
        refused(call(srv, None, "GET", f"/open/batches/{b['id']}{suffix}"), 404, f"'{b['id']}'")
    refused(call(srv, None, "GET", "/open/batches/doomed"), 404)
    refused(call(srv, None, "DELETE", f"/open/batches/{b['id']}"), 404)
    assert ok(call(srv, None, "GET", "/open/batches")) == {"from": 0, "total": 0, "sessions": []}
    # The row stays for the supervisors (and their retention) to see, killed.
    assert row(srv, "SELECT deleted, stop_requested, state, ended_at IS NOT NULL, "
                    "state_changed_at > now() - interval '1 minute', supervisor_id "
                    f"FROM batches WHERE id = {b['id']}") == ("t", "t", "killed", "t", "t", None)
    assert batch_total(srv) == 0
    # Its name is free again.
    create(srv, {"file": "/opt/jobs/x.py", "name": "doomed"})


def test_delete_a_claimed_batch_leaves_the_kill_to_its_supervisor(srv):
    b = create(srv)
    sv, = row(srv, "INSERT INTO supervisors (host, pid, capacity) VALUES ('spark-1', 4242, 4) RETURNING id")
    srv.db.psql(f"UPDATE batches SET supervisor_id = {sv}, state = 'running', started_at = now(), "
                f"state_changed_at = now() - interval '1 hour' WHERE id = {b['id']}")
    assert ok(call(srv, None, "DELETE", f"/open/batches/{b['id']}")) == {"msg": "deleted"}
    refused(call(srv, None, "GET", f"/open/batches/{b['id']}"), 404)
    assert row(srv, "SELECT deleted, stop_requested, state, ended_at, "
                    "state_changed_at < now() - interval '30 minutes' "
                    f"FROM batches WHERE id = {b['id']}") == ("t", "t", "running", None, "t")


def test_delete_an_ended_batch_keeps_its_state(srv):
    b = create(srv)
    end_batch(srv, b["id"], "success")
    assert ok(call(srv, None, "DELETE", f"/open/batches/{b['id']}")) == {"msg": "deleted"}
    assert row(srv, f"SELECT deleted, stop_requested, state FROM batches WHERE id = {b['id']}") == \
        ("t", "t", "success")


# ------------------------------------------------------------------ NOTIFY


def test_writes_notify_the_supervisors_with_their_commit(srv):
    """A psql session LISTENs on livy_batches while requests are made: creates and deletes
    notify with the batch's id; refused requests and reads notify nobody."""
    with srv.db.listen("livy_batches", "livy_sessions") as listener:
        a = create(srv, {"file": "/opt/jobs/a.py", "name": "a"})
        b = create(srv, {"file": "/opt/jobs/b.py"})
        refused(call(srv, None, "POST", "/open/batches", json={"file": "/opt/jobs/c.py", "name": "a"}), 400)
        refused(call(srv, None, "POST", "/open/batches", json={"file": "/etc/passwd"}), 400)
        ok(call(srv, None, "GET", f"/open/batches/{a['id']}"))
        ok(call(srv, None, "GET", f"/open/batches/{a['id']}/log"))
        ok(call(srv, None, "GET", "/open/batches"))
        assert ok(call(srv, None, "DELETE", f"/open/batches/{b['id']}")) == {"msg": "deleted"}
        refused(call(srv, None, "DELETE", f"/open/batches/{b['id']}"), 404)
        got = listener.received()
    assert got == [
        ("livy_batches", str(a["id"])),   # create a
        ("livy_batches", str(b["id"])),   # create b
        ("livy_batches", str(b["id"])),   # delete b
    ], listener.output


# ------------------------------------------------------------------ transport


def test_every_batch_response_is_json_and_head_answers_like_get(srv):
    b = create(srv, {"file": "/opt/jobs/x.py", "name": "j"})
    add_log_lines(srv, b["id"], ["one"])
    for path in ("/open/batches", f"/open/batches/{b['id']}", "/open/batches/j", f"/open/batches/{b['id']}/state",
                 f"/open/batches/{b['id']}/log", "/open/batches/j/logs", "/open/batches/404404"):
        g = call(srv, None, "GET", path)
        hd = call(srv, None, "HEAD", path)
        assert g.status_code == hd.status_code and g.status_code in (200, 404), (path, g.status_code)
        assert is_json(g) and is_json(hd) and hd.content == b""
        assert int(g.headers["Content-Length"]) == len(g.content) == int(hd.headers["Content-Length"])
        assert isinstance(g.json(), dict)


def test_trailing_and_repeated_slashes_reach_the_same_route(srv):
    b = create(srv, {"file": "/opt/jobs/x.py", "name": "slashy"})
    assert ok(call(srv, None, "GET", "/open/batches/"))["total"] == 1
    assert ok(call(srv, None, "GET", f"/open/batches/{b['id']}/"))["id"] == b["id"]
    assert ok(call(srv, None, "GET", "/open//batches//slashy//state")) == {"id": b["id"], "state": "starting"}


HOSTILE = {
    "quotes": 'say "hi" and \'bye\' and `tick`',
    "sql": "'; DROP TABLE batches; --",
    "percent": "100% of %s and %n",
    "emoji": "emoji 😀🎉👩‍👩‍👧 done",
    "non-latin": "Привет · 你好 · مرحبا",
    "controls": "tab\there\nnewline \x01\x1b[31m",
    "json-looking": '{"msg": "not really"}',
}


@pytest.mark.parametrize("label", list(HOSTILE))
def test_hostile_strings_round_trip_exactly(srv, label):
    text = HOSTILE[label]
    body = {"file": "hdfs:///apps/x.jar", "name": f"n {label} {text}".replace("/", "|"), "className": text,
            "args": [text, text[::-1], ""], "driverMemory": text, "queue": text,
            "conf": {f"spark.k.{label}": text}}
    b = create(srv, body)
    assert b["name"] == body["name"]
    md5 = lambda t: hashlib.md5(t.encode()).hexdigest()  # noqa: E731
    assert row(srv, f"SELECT md5(name), md5(class_name), md5(queue), args->>0, conf->>'spark.k.{label}' "
                    f"FROM batches WHERE id = {b['id']}") == (md5(body["name"]), md5(text), md5(text), text, text)
    assert ok(call(srv, None, "GET", "/open/batches/" + quote(body["name"], safe="")))["id"] == b["id"]
    assert row(srv, "SELECT count(*) FROM batches") == ("1",)


# ------------------------------------------------------------------ the bad-input table


@dataclass
class Case:
    id: str
    method: str
    path: str
    body: bytes | None = None
    status: int = 400
    words: tuple = ()          # each must appear in msg (case-insensitive)
    allow: str | None = None   # the Allow header of a 405


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def with_file(**fields) -> bytes:
    return j({"file": "hdfs:///apps/etl.jar", **fields})


CASES: list[Case] = []


def case(*args, **kw):
    CASES.append(Case(*args, **kw))


B = "/open/batches"

# -- bodies that are not one JSON object
case("malformed-json", "POST", B, b'{"file": "hdfs:///a.jar",', words=("JSON",))
case("not-json", "POST", B, b"file=hdfs:///a.jar", words=("JSON",))
case("empty-body", "POST", B, b"", words=("empty",))
case("whitespace-body", "POST", B, b" \r\n ", words=("empty",))
case("json-array", "POST", B, b'[{"file": "hdfs:///a.jar"}]', words=("object", "array"))
case("json-string", "POST", B, b'"hdfs:///a.jar"', words=("object", "string"))
case("json-null", "POST", B, b"null", words=("object",))
case("duplicate-keys", "POST", B, b'{"file": "hdfs:///a.jar", "file": "hdfs:///b.jar"}', words=("duplicate",))
case("invalid-utf8", "POST", B, b'{"file": "hdfs:///\xff.jar"}', words=("JSON",))
case("lone-surrogate", "POST", B, b'{"file": "hdfs:///\\ud800.jar"}', words=("JSON",))
case("trailing-garbage", "POST", B, b'{"file": "hdfs:///a.jar"} x', words=("JSON",))
case("deep-nesting", "POST", B, b'{"args": ' + b"[" * 5000 + b"]" * 5000 + b"}", words=("JSON",))
case("nul-in-string", "POST", B, b'{"file": "hdfs:///a\\u0000.jar"}', words=("u0000",))
case("bom", "POST", B, b'\xef\xbb\xbf{"file": "hdfs:///a.jar"}', words=("JSON",))

# -- file: required, a non-empty string
case("file-missing", "POST", B, b"{}", words=("'file'", "required"))
case("file-missing-with-others", "POST", B, j({"className": "A", "args": ["x"]}), words=("'file'",))
case("file-null", "POST", B, j({"file": None}), words=("'file'",))
case("file-empty", "POST", B, j({"file": ""}), words=("'file'", "empty"))

# -- every field given the wrong type (or a value out of its range)
WRONG_TYPES = {
    "file": [1, ["hdfs:///a.jar"], True, {"f": 1}],
    "className": [1, ["A"], False, ""],
    "args": ["--x", [1], {"a": "b"}, [None], [["x"]]],
    "proxyUser": [1, {"u": "alice"}, ["alice"]],
    "name": [1, True, ["n"], "", "12345", "a/b", "n" * 2000],
    "driverMemory": [512, ["1g"], 1.5],
    "executorMemory": [1024, {"m": 1}],
    "queue": [["q"], 7],
    "driverCores": ["2", 1.5, True, -1, 10**7],
    "executorCores": ["2", 2.0, -3],
    "numExecutors": ["3", False, 10**9],
    "jars": ["a.jar", [1], {"a": "b"}, [None]],
    "pyFiles": ["x.py", [True]],
    "files": ["f", [1.5]],
    "archives": ["a.zip", [{"a": 1}]],
    "conf": [["spark.a=1"], "spark.a=1", 5, {"spark.a": None}, {"spark.a": {"b": "c"}}, {"spark.a": ["x"]}],
}
for fname, values in WRONG_TYPES.items():
    for i, v in enumerate(values):
        words = ("spark.a",) if fname == "conf" and isinstance(v, dict) else (fname,)
        body = j({fname: v}) if fname == "file" else with_file(**{fname: v})
        case(f"type-{fname}-{i}-{type(v).__name__}", "POST", B, body, words=words)
case("conf-empty-key", "POST", B, with_file(conf={"": "x"}), words=("conf", "empty"))
case("int-too-big-for-json", "POST", B, b'{"file": "hdfs:///a.jar", "driverCores": 99999999999999999999}',
     words=("JSON",))

# -- unknown fields, the session-only ones included
for fname, v in (("kind", "pyspark"), ("ttl", "1h"), ("idleTimeout", "10m"), ("heartbeatTimeoutInSecond", 60),
                 ("code", "1 + 1"), ("File", "x"), ("classname", "A"), ("nmae", "typo"), ("", 1)):
    case(f"unknown-field-{fname or 'empty'}", "POST", B, with_file(**{fname: v}), words=(f"'{fname}'", "unknown"))

# -- operator-only conf keys
for key in ("spark.master", "spark.submit.deployMode"):
    case(f"conf-blocked-{key}", "POST", B, with_file(conf={"spark.a": "1", key: "yarn"}), words=(key,))

# -- where the files come from
for label, fname, entry, words in (
        ("outside", "file", "/etc/passwd", ("'/etc/passwd'", ALLOWED_DIRS)),
        ("name-prefix", "file", "/opt/jobsx/etl.py", (ALLOWED_DIRS,)),
        ("dotdot", "file", "/opt/jobs/../../etc/passwd", ("'..'",)),
        ("dot", "file", "/opt/jobs/./etl.py", ("'.'",)),
        ("encoded-dotdot", "file", "file:///opt/jobs/%2e%2e/etc/passwd", ("'..'",)),
        ("file-uri-outside", "file", "file:/etc/shadow", (ALLOWED_DIRS,)),
        ("file-uri-host", "file", "file://evil/opt/jobs/etl.py", ("host",)),
        ("local-uri-outside", "file", "local:///usr/lib/spark/x.jar", (ALLOWED_DIRS,)),
        ("relative", "file", "etl.py", ("relative",)),
        ("relative-dot", "file", "./opt/jobs/etl.py", ("relative",)),
        ("control", "file", "/opt/jobs/a\nb.py", ("control",)),
        ("query", "file", "/opt/jobs/a.py?x", ("'?'",)),
        ("bad-escape", "file", "file:///opt/jobs/100%.py", ("%-escape",)),
        ("scheme-ftp", "file", "ftp://h/etl.py", ("'ftp'",)),
        ("scheme-jar", "file", "jar:file:/opt/jobs/a.jar!/x", ("'jar'",)),
        ("scheme-drive", "file", "C:\\jobs\\etl.py", ("'C'",))):
    case(f"path-{label}", "POST", B, j({fname: entry}), words=("'file'",) + words)
for label, fname, entry in (("jars", "jars", "/tmp/evil.jar"), ("pyFiles", "pyFiles", "local:/usr/lib/x.py"),
                            ("files", "files", "file:///etc/hosts"), ("archives", "archives", "/opt/jobs/../x.zip"),
                            ("jars-ftp", "jars", "ftp://h/a.jar")):
    case(f"path-list-{label}", "POST", B, with_file(**{fname: ["hdfs:///ok.jar", entry]}),
         words=(f"'{fname}'", f"'{entry}'"))
case("path-list-comma-split", "POST", B, with_file(jars=["/opt/jobs/a.jar,/etc/b.jar"]), words=("'/etc/b.jar'",))
case("path-list-empty-item", "POST", B, with_file(files=[""]), words=("'files'", "empty"))
case("path-conf-spark-jars", "POST", B, with_file(conf={"spark.jars": "/opt/jobs/a.jar, /etc/b.jar"}),
     words=("'spark.jars'", "'/etc/b.jar'"))
case("path-conf-yarn-dist", "POST", B, with_file(conf={"spark.yarn.dist.files": "file:///etc/hosts"}),
     words=("'spark.yarn.dist.files'",))

# -- names
case("name-duplicate-live", "POST", B, j({"file": "/opt/jobs/x.py", "name": "taken"}), words=("duplicate", "taken"))
case("name-all-digits", "POST", B, with_file(name="42"), words=("digits", "batch id"))

# -- query strings
for label, q, word in (("from-alpha", "from=abc", "from"), ("from-negative", "from=-1", "from"),
                       ("size-negative", "size=-1", "size"), ("size-huge", "size=99999999999", "size"),
                       ("bad-escape", "from=%zz", "escape"), ("bad-utf8", "from=%FF", "UTF-8")):
    case(f"list-{label}", "GET", f"{B}?{q}", status=400, words=(word,))
for label, q, word in (("from-alpha", "from=x", "from"), ("from-negative", "from=-2", "from"),
                       ("size-float", "size=1.5", "size"), ("size-hugely-negative", "size=-99999999999", "size")):
    case(f"log-{label}", "GET", f"{B}/{{live}}/log?{q}", status=400, words=(word,))
case("create-doas-bad-utf8", "POST", f"{B}?doAs=%C3", with_file(), words=("UTF-8",))

# -- unknown batches
for label, ref in (("id", "424242"), ("name", "no-such-batch"), ("huge-id", "9" * 30), ("bad-utf8", "%FF%FE"),
                   ("session-name", "a-session")):
    for suffix, method in (("", "GET"), ("/state", "GET"), ("/log", "GET"), ("/logs", "GET"), ("", "DELETE")):
        case(f"unknown-{label}-{method}{suffix.replace('/', '-')}", method, f"{B}/{ref}{suffix}", status=404,
             words=("not found",))

# -- wrong methods (405 with Allow) and unknown routes (404)
for method, path, allow in (
        ("PUT", B, "GET, HEAD, POST"), ("DELETE", B, "GET, HEAD, POST"), ("PATCH", B, "GET, HEAD, POST"),
        ("POST", f"{B}/{{live}}", "GET, HEAD, DELETE"), ("PUT", f"{B}/{{live}}", "GET, HEAD, DELETE"),
        ("DELETE", f"{B}/{{live}}/state", "GET, HEAD"), ("POST", f"{B}/{{live}}/state", "GET, HEAD"),
        ("POST", f"{B}/{{live}}/log", "GET, HEAD"), ("DELETE", f"{B}/{{live}}/logs", "GET, HEAD"),
        ("OPTIONS", B, "GET, HEAD, POST")):
    case(f"method-{method}-{path.replace('/', '_')}", method, path, with_file() if method != "GET" else None,
         status=405, words=(method,), allow=allow)
for path in (f"{B}/{{live}}/nope", f"{B}/{{live}}/statements", f"{B}/{{live}}/stop", f"{B}/{{live}}/state/x",
             f"{B}/{{live}}/log/x", "/open/Batches", "/open/batch"):
    case(f"route-{path.replace('/', '_')}", "GET", path, status=404)


@pytest.fixture
def world(srv):
    """A live batch named 'taken' with three log lines, an ended one, and a session named
    'a-session', on the emptied database."""
    ids = {"live": create(srv, {"file": "/opt/jobs/x.py", "name": "taken"})["id"]}
    ids["ended"] = create(srv, {"file": "/opt/jobs/x.py", "name": "was-here"})["id"]
    end_batch(srv, ids["ended"])
    add_log_lines(srv, ids["live"], ["a", "b", "c"])
    ok(call(srv, None, "POST", "/open/sessions", json={"name": "a-session"}), 201)
    return ids


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_batch_request(srv, world, c: Case):
    path = c.path.format(**world)
    before = srv.db.snapshot()
    total = batch_total(srv)
    a = h.raw(srv, c.method, path, c.body, {"Content-Type": "application/json"} if c.body is not None else None)
    assert a.status == c.status, f"{c.method} {path}: expected {c.status}, got {a.status}: {a.body[:400]!r}"
    msg = h.assert_json_msg(a)
    for w in c.words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    if c.allow:
        assert a.headers.get("Allow") == c.allow, a.headers
    after = srv.db.snapshot()
    assert [t for t in before if before[t] != after[t]] == [], "the database changed"
    assert batch_total(srv) == total
    # The server still answers normally afterwards.
    assert h.raw(srv, "GET", f"/open/batches/{world['live']}/state").status == 200


def test_the_table_covers_every_batch_field():
    fields = {"file", "proxyUser", "className", "args", "jars", "pyFiles", "files", "archives", "driverMemory",
              "driverCores", "executorMemory", "executorCores", "numExecutors", "queue", "name", "conf"}
    assert set(WRONG_TYPES) == fields


# ------------------------------------------------------------------ LivyBatchAllowedPaths


@pytest.mark.parametrize("entry", [
    "/opt/jobs/etl.py", "/opt/jobs", "//opt//jobs//nightly/etl.jar", "/srv/spark/apps/x.jar",
    "file:/opt/jobs/etl.py", "file:///opt/jobs/etl.py", "FILE:///opt/jobs/etl.py", "local:/opt/jobs/lib.jar",
    "local:///srv/spark/apps/lib.jar", "/opt/jobs/env.tar.gz#env", "file:///opt/jobs/my%20job.py",
    "/opt/jobs/.hidden.py", "/opt/jobs/caf\u00e9.py",
    "hdfs:///apps/etl.jar", "hdfs://nn:8020/apps/../etl.jar", "s3a://bucket/etl.py", "s3://b/x.jar",
    "abfs://c@a.dfs.core.windows.net/x.jar", "abfss://c@a.dfs.core.windows.net/x.jar",
    "wasb://c@a.blob.core.windows.net/x.jar", "wasbs://c@a.blob.core.windows.net/x.jar", "gs://b/x.py",
    "http://repo.example.org/x.jar", "https://repo.example.org/x.jar", "viewfs://cluster/apps/x.jar",
])
def test_allowed_entries_are_stored_untouched(srv, entry):
    body = {"file": entry, "jars": [entry], "pyFiles": [entry], "files": [entry], "archives": [entry],
            "conf": {"spark.jars": entry}}
    b = create(srv, body)
    assert row(srv, f"SELECT file, jars->>0, py_files->>0, files->>0, archives->>0, conf->>'spark.jars' "
                    f"FROM batches WHERE id = {b['id']}") == (entry,) * 6


def test_without_allowed_paths_every_local_path_is_refused(srv):
    """The root mount sets no LivyBatchAllowedPaths: remote URIs only."""
    before = srv.db.snapshot()
    for entry in ("/opt/jobs/etl.py", "file:///opt/jobs/etl.py", "local:/opt/jobs/x.jar", "etl.py"):
        msg = refused(call(srv, "alice", "POST", "/batches", json={"file": entry}), 400,
                      f"'{entry}'", "no LivyBatchAllowedPaths")
        assert "hdfs" in msg
        refused(call(srv, "alice", "POST", "/batches", json={"file": "s3a://b/x.py", "files": [entry]}), 400,
                "'files'", "LivyBatchAllowedPaths")
    assert srv.db.snapshot() == before
    b = create(srv, {"file": "hdfs:///apps/etl.jar", "pyFiles": ["s3a://b/x.py"]}, user="alice", mount="")
    assert b["owner"] == "alice"


def test_a_section_list_replaces_the_enclosing_one(srv):
    # /open/narrow: LivyBatchAllowedPaths /srv/other, not /open's two directories.
    b = create(srv, {"file": "/srv/other/x.py"}, mount="/open/narrow")
    assert b["state"] == "starting"
    refused(call(srv, None, "POST", "/open/narrow/batches", json={"file": "/opt/jobs/x.py"}), 400,
            "LivyBatchAllowedPaths (/srv/other)")
    refused(call(srv, None, "POST", "/open/batches", json={"file": "/srv/other/x.py"}), 400, ALLOWED_DIRS)


@pytest.mark.parametrize("value,words", [
    ("relative/dir", "relative"), ("/opt/../etc", "'..'"), ("/opt/./jobs", "'.'"),
])
def test_a_bad_allowed_path_stops_httpd_at_startup(livy_server, value, words):
    srv = livy_server(mpm="event", start=False,
                      extra_conf=f"<Location />\n    LivyBatchAllowedPaths /opt/jobs {value}\n</Location>\n")
    with pytest.raises(h.HarnessError) as e:
        srv.start(timeout=20)
    assert "LivyBatchAllowedPaths" in str(e.value) and words in str(e.value), str(e.value)[:2000]


# ------------------------------------------------------------------ security


def alices_batch(srv, mount=""):
    """alice's batch with three log lines."""
    b = create(srv, {"file": "hdfs:///apps/etl.jar", "name": "alices"}, user="alice", mount=mount)
    add_log_lines(srv, b["id"], ["l0", "l1", "l2"])
    return b


def test_the_owner_is_the_authenticated_user_and_anonymous_has_none(srv):
    a = create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="")
    b = create(srv, {"file": "hdfs:///a.jar"}, user="bob", mount="")
    assert (a["owner"], a["proxyUser"]) == ("alice", "alice")   # impersonation On: the owner
    assert (b["owner"], b["proxyUser"]) == ("bob", "bob")
    assert srv.db.psql("SELECT owner, proxy_user FROM batches ORDER BY id") == [("alice", "alice"), ("bob", "bob")]
    assert create(srv)["owner"] is None
    listed = {x["id"]: x["owner"] for x in ok(call(srv, "carol", "GET", "/batches"))["sessions"]}
    assert listed[a["id"]] == "alice" and listed[b["id"]] == "bob"


def test_no_credentials_is_401_and_a_user_outside_the_lists_is_403(srv):
    b = alices_batch(srv)
    before = srv.db.snapshot()
    for method, path, body in (("GET", "/batches", None), ("POST", "/batches", {"file": "hdfs:///a.jar"}),
                               ("GET", f"/batches/{b['id']}", None), ("GET", f"/batches/{b['id']}/state", None),
                               ("GET", f"/batches/{b['id']}/log", None), ("DELETE", f"/batches/{b['id']}", None)):
        refused(call(srv, None, method, path, json=body), 401)
        refused(call(srv, "dave", method, path, json=body), 403, "dave")
    assert srv.db.snapshot() == before


def test_batch_and_state_are_never_refused_but_hide_the_log(srv):
    b = alices_batch(srv)
    mine = create(srv, {"file": "hdfs:///a.jar"}, user="bob", mount="")
    add_log_lines(srv, mine["id"], ["bob-line"])
    got = ok(call(srv, "bob", "GET", f"/batches/{b['id']}"))
    assert (got["owner"], got["log"]) == ("alice", [])
    assert ok(call(srv, "bob", "GET", "/batches/alices"))["log"] == []
    assert ok(call(srv, "bob", "GET", f"/batches/{b['id']}/state")) == {"id": b["id"], "state": "starting"}
    assert ok(call(srv, "alice", "GET", f"/batches/{b['id']}"))["log"] == ["l0", "l1", "l2"]
    for user, expected in (("bob", {b["id"]: [], mine["id"]: ["bob-line"]}),
                           ("alice", {b["id"]: ["l0", "l1", "l2"], mine["id"]: []}),
                           ("erin", {b["id"]: ["l0", "l1", "l2"], mine["id"]: ["bob-line"]}),
                           ("carol", {b["id"]: ["l0", "l1", "l2"], mine["id"]: ["bob-line"]})):
        assert {x["id"]: x["log"] for x in ok(call(srv, user, "GET", "/batches"))["sessions"]} == expected, user


def test_the_log_needs_view_access(srv):
    b = alices_batch(srv)
    before = srv.db.snapshot()
    for path in (f"/batches/{b['id']}/log", f"/batches/{b['id']}/logs", "/batches/alices/log"):
        refused(call(srv, "bob", "GET", path), 403, "bob", "may not view batch")
    assert srv.db.snapshot() == before
    for user in ("alice", "carol", "erin", "frank"):
        assert ok(call(srv, user, "GET", f"/batches/{b['id']}/log"))["log"] == ["l0", "l1", "l2"], user


def test_delete_needs_modify_access(srv):
    b = alices_batch(srv)
    before = srv.db.snapshot()
    for user in ("bob", "erin"):   # another user, a view user
        refused(call(srv, user, "DELETE", f"/batches/{b['id']}"), 403, user, "may not modify batch")
        refused(call(srv, user, "DELETE", "/batches/alices"), 403, user)
    assert srv.db.snapshot() == before
    assert ok(call(srv, "alice", "GET", f"/batches/{b['id']}/state"))["state"] == "starting"
    assert ok(call(srv, "frank", "DELETE", f"/batches/{b['id']}")) == {"msg": "deleted"}  # a modify user
    for user in ("alice", "carol"):   # the owner, a superuser
        other = create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="")
        assert ok(call(srv, user, "DELETE", f"/batches/{other['id']}")) == {"msg": "deleted"}
    assert row(srv, "SELECT count(*) FROM batches WHERE deleted AND stop_requested AND state = 'killed'") == ("3",)


def test_the_proxy_user_may_view_and_delete(srv):
    b = create(srv, {"file": "hdfs:///a.jar", "proxyUser": "bob"}, user="carol", mount="")
    assert (b["owner"], b["proxyUser"]) == ("carol", "bob")
    add_log_lines(srv, b["id"], ["for bob"])
    assert ok(call(srv, "bob", "GET", f"/batches/{b['id']}/log"))["log"] == ["for bob"]
    refused(call(srv, "alice", "GET", f"/batches/{b['id']}/log"), 403, "alice")
    refused(call(srv, "alice", "DELETE", f"/batches/{b['id']}"), 403, "alice")
    assert ok(call(srv, "bob", "DELETE", f"/batches/{b['id']}")) == {"msg": "deleted"}


@pytest.mark.parametrize("header_value", ["x", "airflow"])
def test_csrf_is_enforced_when_on(srv, header_value):
    hdr = {"X-Requested-By": header_value}
    before = srv.db.snapshot()
    assert "X-Requested-By" in refused(call(srv, "alice", "POST", "/csrf/batches",
                                            json={"file": "hdfs:///a.jar"}), 400)
    assert srv.db.snapshot() == before
    b = create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="/csrf", headers=hdr)
    for path in ("/csrf/batches", f"/csrf/batches/{b['id']}", f"/csrf/batches/{b['id']}/state",
                 f"/csrf/batches/{b['id']}/log"):
        ok(call(srv, "alice", "GET", path))
    before = srv.db.snapshot()
    assert "X-Requested-By" in refused(call(srv, "alice", "DELETE", f"/csrf/batches/{b['id']}"), 400)
    assert srv.db.snapshot() == before
    assert ok(call(srv, "alice", "DELETE", f"/csrf/batches/{b['id']}", headers=hdr)) == {"msg": "deleted"}
    # Off elsewhere: no header needed.
    c = create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="")
    assert ok(call(srv, "alice", "DELETE", f"/batches/{c['id']}")) == {"msg": "deleted"}


@pytest.mark.parametrize("via", ["body", "doAs"])
def test_impersonation(srv, via):
    def as_(user, target, mount=""):
        if via == "body":
            return call(srv, user, "POST", f"{mount}/batches", json={"file": "hdfs:///a.jar", "proxyUser": target})
        return call(srv, user, "POST", f"{mount}/batches?doAs={target}", json={"file": "hdfs:///a.jar"})

    before = srv.db.snapshot()
    refused(as_("alice", "bob"), 403, "alice", "bob")
    for user in ("erin", "frank"):   # view and modify users are no superusers
        refused(as_(user, "carol"), 403, user, "carol")
    assert srv.db.snapshot() == before
    assert ok(as_("alice", "alice"), 201)["proxyUser"] == "alice"
    got = ok(as_("carol", "someone-else"), 201)
    assert (got["owner"], got["proxyUser"]) == ("carol", "someone-else")
    assert row(srv, f"SELECT owner, proxy_user FROM batches WHERE id = {got['id']}") == ("carol", "someone-else")
    # Impersonation off: ignored, null.
    got = ok(as_("alice", "bob", mount="/noimp"), 201)
    assert (got["owner"], got["proxyUser"]) == ("alice", None)


def test_doas_takes_precedence_over_the_body(srv):
    b = create(srv, {"file": "hdfs:///a.jar", "proxyUser": "bob"}, user="alice", mount="", query="?doAs=alice")
    assert b["proxyUser"] == "alice"
    refused(call(srv, "alice", "POST", "/batches?doAs=bob", json={"file": "hdfs:///a.jar", "proxyUser": "alice"}),
            403, "alice", "bob")


def test_the_per_user_limit_counts_sessions_and_batches_together(srv):
    """LivyMaxSessionsPerUser 2 on /limits: one session and one batch are alice's share."""
    s = ok(call(srv, "alice", "POST", "/limits/sessions", json={}), 201)
    b = create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="/limits")
    before = srv.db.snapshot()
    for path, body in (("/limits/batches", {"file": "hdfs:///b.jar"}), ("/limits/sessions", {})):
        msg = refused(call(srv, "alice", "POST", path, json=body), 429, "alice", "sessions and batches")
        assert "2" in msg
    assert srv.db.snapshot() == before
    # Others have their own share: bob's two batches.
    for _ in range(2):
        create(srv, {"file": "hdfs:///a.jar"}, user="bob", mount="/limits")
    refused(call(srv, "bob", "POST", "/limits/sessions", json={}), 429, "bob")
    # An ended batch frees a place; so does a deleted one.
    end_batch(srv, b["id"], "success")
    c = create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="/limits")
    refused(call(srv, "alice", "POST", "/limits/batches", json={"file": "hdfs:///a.jar"}), 429)
    assert ok(call(srv, "alice", "DELETE", f"/limits/batches/{c['id']}")) == {"msg": "deleted"}
    ok(call(srv, "alice", "POST", "/limits/sessions", json={}), 201)
    refused(call(srv, "alice", "POST", "/limits/batches", json={"file": "hdfs:///a.jar"}), 429)
    # Other mounts have no limit.
    create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="")
    assert s["owner"] == "alice"


def test_the_starting_limit_counts_sessions_and_batches_together(srv):
    """LivyMaxStartingSessions 3 on /burst."""
    ok(call(srv, "alice", "POST", "/burst/sessions", json={}), 201)
    ok(call(srv, "bob", "POST", "/burst/sessions", json={}), 201)
    b = create(srv, {"file": "hdfs:///a.jar"}, user="carol", mount="/burst")
    before = srv.db.snapshot()
    for user, path, body in (("alice", "/burst/batches", {"file": "hdfs:///a.jar"}),
                             ("frank", "/burst/sessions", {})):
        msg = refused(call(srv, user, "POST", path, json=body), 429, "sessions and batches", "starting")
        assert "3" in msg
    assert srv.db.snapshot() == before
    # Once the batch runs, there is room again.
    srv.db.psql(f"UPDATE batches SET state = 'running' WHERE id = {b['id']}")
    create(srv, {"file": "hdfs:///a.jar"}, user="alice", mount="/burst")
    refused(call(srv, "bob", "POST", "/burst/batches", json={"file": "hdfs:///a.jar"}), 429)


def test_no_request_left_a_500_or_a_crash(srv):
    # Every test above ran against this server; a 500 would have failed it. A worker crash shows
    # in the error log (AH00052 ... exit signal), which the fixture checks after every test.
    access = (srv.root / "logs" / "access_log").read_text(errors="replace").splitlines()
    fives = [line for line in access if re.search(r'" 5\d\d ', line)]
    assert not fives, fives[:10]
