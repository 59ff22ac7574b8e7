"""Every route of the Livy interactive-session API (issue 3, ../shared/LIVY-API.md): status codes,
Location headers, shapes with Livy's key order, value types, and the rows left in PostgreSQL.

No supervisor runs here: sessions stay `not_started` and statements `waiting`, which is what the
API alone must produce (the supervisor claims them through NOTIFY, a separate issue; here the rows
it would act on, and the notifications a listener receives, are checked instead)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

import livy_harness as h

# The session object, keys in the order Livy emits them (LIVY-API.md, "Session object").
SESSION_KEYS = ["id", "name", "appId", "owner", "proxyUser", "state", "kind", "appInfo", "log",
                "ttl", "idleTimeout", "driverMemory", "driverCores", "executorMemory",
                "executorCores", "conf", "archives", "files", "heartbeatTimeoutInSecond", "jars",
                "numExecutors", "pyFiles", "queue"]
APP_INFO_KEYS = ["driverLogUrl", "sparkUiUrl", "executorLogUrls"]
STATEMENT_KEYS = ["id", "code", "state", "output", "progress", "started", "completed"]
SESSION_STATES = {"not_started", "starting", "recovering", "idle", "busy", "shutting_down", "error",
                  "dead", "killed", "success"}
STATEMENT_STATES = {"waiting", "running", "available", "cancelling", "cancelled"}
KINDS = {"spark", "pyspark", "sparkr", "sql", "shared"}


# ------------------------------------------------------------------ helpers


def is_json(r) -> bool:
    return r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"


def ok(r, status=200):
    """The JSON body of a successful answer with the given status."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    assert is_json(r), r.headers
    return r.json()


def err(r, status):
    """The message of a JSON error answer {"msg": "..."} with the given status."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    assert is_json(r), r.headers
    body = r.json()
    assert isinstance(body, dict) and list(body) == ["msg"], body
    assert isinstance(body["msg"], str) and body["msg"], body
    return body["msg"]


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def opt_str(v) -> bool:
    return v is None or isinstance(v, str)


def str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def check_session(s: dict) -> dict:
    """Livy's session object: every key, in order, with the right types."""
    assert list(s.keys()) == SESSION_KEYS, list(s.keys())
    assert is_int(s["id"]) and s["id"] >= 0
    for k in ("name", "appId", "owner", "proxyUser", "ttl", "idleTimeout", "driverMemory",
              "executorMemory", "queue"):
        assert opt_str(s[k]), (k, s[k])
    assert s["state"] in SESSION_STATES, s["state"]
    assert s["kind"] in KINDS, s["kind"]
    assert isinstance(s["appInfo"], dict) and list(s["appInfo"].keys()) == APP_INFO_KEYS, s["appInfo"]
    assert all(opt_str(v) for v in s["appInfo"].values()), s["appInfo"]
    assert str_list(s["log"]), s["log"]
    for k in ("driverCores", "executorCores", "numExecutors", "heartbeatTimeoutInSecond"):
        assert is_int(s[k]), (k, s[k])
    assert isinstance(s["conf"], dict) and all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in s["conf"].items()), s["conf"]
    for k in ("archives", "files", "jars", "pyFiles"):
        assert str_list(s[k]), (k, s[k])
    return s


def check_statement(st: dict) -> dict:
    assert list(st.keys()) == STATEMENT_KEYS, list(st.keys())
    assert is_int(st["id"]) and st["id"] >= 0
    assert isinstance(st["code"], str)
    assert st["state"] in STATEMENT_STATES
    assert st["output"] is None or isinstance(st["output"], dict)
    assert isinstance(st["progress"], float) and 0.0 <= st["progress"] <= 1.0, st["progress"]
    assert is_int(st["started"]) and is_int(st["completed"])
    return st


def create(server, body=None, **kw):
    r = server.post("/sessions", json={} if body is None else body, **kw)
    s = check_session(ok(r, 201))
    assert r.headers["Location"] == f"/sessions/{s['id']}"
    return s


def post_code(server, sid, code="1 + 1", kind="pyspark"):
    body = {"code": code}
    if kind is not None:
        body["kind"] = kind
    r = server.post(f"/sessions/{sid}/statements", json=body)
    st = check_statement(ok(r, 201))
    assert r.headers["Location"] == f"/sessions/{sid}/statements/{st['id']}"
    return st


def row(server, sql):
    rows = server.db.psql(sql)
    assert len(rows) == 1, rows
    return rows[0]


def add_log_lines(server, sid, lines):
    """Writes log lines as the supervisor would: seq counting from 0 per session, next_log_seq
    advanced in the same transaction."""
    values = ", ".join(f"({sid}, {i}, '{line}')" for i, line in enumerate(lines))
    server.db.psql(f"BEGIN; INSERT INTO session_log (session_id, seq, line) VALUES {values}; "
                   f"UPDATE sessions SET next_log_seq = {len(lines)} WHERE id = {sid}; COMMIT;")


# ------------------------------------------------------------------ GET /version


def test_version(server):
    body = ok(server.get("/version"))
    assert list(body)[0] == "version"
    assert body["version"] == "0.9.0"
    assert isinstance(body["server"], str) and body["server"].startswith("mod_livy/")


# ------------------------------------------------------------------ POST /sessions


def test_create_session_defaults_full_object_in_livy_key_order(server):
    r = server.post("/sessions", json={})
    s = check_session(ok(r, 201))
    assert r.headers["Location"] == f"/sessions/{s['id']}"
    assert s == {
        "id": s["id"], "name": None, "appId": None, "owner": None, "proxyUser": None,
        "state": "not_started", "kind": "shared",
        "appInfo": {"driverLogUrl": None, "sparkUiUrl": None, "executorLogUrls": None},
        "log": [], "ttl": None, "idleTimeout": None, "driverMemory": None, "driverCores": 0,
        "executorMemory": None, "executorCores": 0, "conf": {}, "archives": [], "files": [],
        "heartbeatTimeoutInSecond": 0, "jars": [], "numExecutors": 0, "pyFiles": [], "queue": None,
    }
    # The row was committed as not_started (the supervisor's queue) with nothing else pending.
    state, kind, deleted, nxt, stop = row(server, "SELECT state, kind, deleted, next_statement_id, "
                                                  f"stop_requested FROM sessions WHERE id = {s['id']}")
    assert (state, kind, deleted, nxt, stop) == ("not_started", "shared", "f", "0", None)
    # The Location answers the same object.
    assert ok(server.get(r.headers["Location"])) == s


def test_create_session_echoes_every_field(server):
    body = {
        "kind": "pyspark", "proxyUser": "someone", "name": "etl-daily",
        "jars": ["a.jar", "hdfs:///b.jar"], "pyFiles": ["x.py"], "files": ["f.txt"],
        "archives": ["env.tar.gz#env"], "driverMemory": "2g", "driverCores": 2,
        "executorMemory": "4g", "executorCores": 3, "numExecutors": 5, "queue": "adhoc",
        "conf": {"spark.sql.shuffle.partitions": "8"}, "heartbeatTimeoutInSecond": 120,
        "ttl": "2h", "idleTimeout": "30m",
    }
    s = create(server, body)
    expected = dict(body)
    expected["proxyUser"] = None  # impersonation is off by default: ignored, shown as null
    for k, v in expected.items():
        assert s[k] == v, (k, s[k], v)
    assert s["state"] == "not_started" and s["owner"] is None
    ttl_ms, idle_ms, proxy, hb = row(server, "SELECT ttl_ms, idle_timeout_ms, proxy_user, heartbeat_timeout_s "
                                             f"FROM sessions WHERE id = {s['id']}")
    assert (ttl_ms, idle_ms, proxy, hb) == (str(2 * 3600 * 1000), str(30 * 60 * 1000), None, "120")
    assert ok(server.get(f"/sessions/{s['id']}")) == s


def test_create_session_null_fields_mean_unset(server):
    body = {k: None for k in ("kind", "proxyUser", "name", "jars", "pyFiles", "files", "archives",
                              "driverMemory", "driverCores", "executorMemory", "executorCores",
                              "numExecutors", "queue", "conf", "heartbeatTimeoutInSecond", "ttl",
                              "idleTimeout")}
    s = create(server, body)
    assert s["kind"] == "shared" and s["name"] is None and s["conf"] == {} and s["jars"] == []
    assert s["driverCores"] == 0 and s["ttl"] is None


@pytest.mark.parametrize("given,canonical", [
    ("spark", "spark"), ("scala", "spark"), ("pyspark", "pyspark"), ("python", "pyspark"),
    ("sparkr", "sparkr"), ("r", "sparkr"), ("sql", "sql"), ("shared", "shared"),
])
def test_create_session_kind_aliases_are_canonicalised(server, given, canonical):
    s = create(server, {"kind": given})
    assert s["kind"] == canonical
    assert row(server, f"SELECT kind FROM sessions WHERE id = {s['id']}") == (canonical,)
    assert ok(server.get(f"/sessions/{s['id']}"))["kind"] == canonical


def test_create_session_conf_ints_and_booleans_are_coerced_to_strings(server):
    # Airflow sends ints; booleans come from YAML-minded clients.
    s = create(server, {"conf": {"spark.executor.instances": 2, "spark.dynamicAllocation.enabled": True,
                                 "spark.speculation": False, "spark.x.big": 10**15,
                                 "spark.x.neg": -3, "spark.app.note": "text"}})
    assert s["conf"] == {"spark.executor.instances": "2", "spark.dynamicAllocation.enabled": "true",
                         "spark.speculation": "false", "spark.x.big": "1000000000000000",
                         "spark.x.neg": "-3", "spark.app.note": "text"}
    assert ok(server.get(f"/sessions/{s['id']}"))["conf"] == s["conf"]


JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@pytest.mark.parametrize("number", [0.6, 0.5, 1.5, 0.25, -2.75, 1e20, 2.5e-7])
def test_create_session_conf_floats_are_coerced_to_well_formed_numbers(server, number):
    # {"spark.memory.fraction": 0.6} must reach Spark (and be echoed) as a well-formed number
    # with the client's value ("0.6", as Livy's Jackson gives), not a printf artefact like ".6".
    s = create(server, {"conf": {"spark.memory.fraction": number}})
    value = s["conf"]["spark.memory.fraction"]
    assert JSON_NUMBER.fullmatch(value), f"conf {number!r} was coerced to {value!r}"
    assert float(value) == number, value
    if abs(number) >= 1e-4 and abs(number) < 1e15:
        assert value == repr(number), f"conf {number!r} was coerced to {value!r}, expected {repr(number)!r}"


def test_body_is_json_whatever_the_content_type(server):
    # Clients send application/json, nothing, or (the Java client) Content-Encoding: UTF-8.
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Encoding": "UTF-8", "Content-Type": "application/json"}, {}):
        r = server.post("/sessions", data=b'{"kind": "sql"}', headers=headers)
        s = check_session(ok(r, 201))
        assert s["kind"] == "sql"


def test_session_name_is_freed_when_the_session_ends(server):
    first = create(server, {"name": "reuse-me"})
    assert server.post(f"/sessions/{first['id']}/stop").status_code == 204
    second = create(server, {"name": "reuse-me"})
    assert second["id"] != first["id"]
    # By name, the live one answers.
    assert ok(server.get("/sessions/reuse-me"))["id"] == second["id"]


# ------------------------------------------------------------------ GET /sessions


def test_list_sessions_creation_order_paging_and_total(server):
    ids = [create(server, {"name": f"s{i}", "kind": "sql"})["id"] for i in range(5)]
    body = ok(server.get("/sessions"))
    assert list(body) == ["from", "total", "sessions"]
    assert body["from"] == 0 and body["total"] == 5
    assert [s["id"] for s in body["sessions"]] == ids
    for s in body["sessions"]:
        check_session(s)
    page = ok(server.get("/sessions?from=2&size=2"))
    assert page["from"] == 2 and page["total"] == 5
    assert [s["id"] for s in page["sessions"]] == ids[2:4]
    assert [s["name"] for s in page["sessions"]] == ["s2", "s3"]
    assert ok(server.get("/sessions?size=0")) == {"from": 0, "total": 5, "sessions": []}
    assert ok(server.get("/sessions?from=5")) == {"from": 5, "total": 5, "sessions": []}
    assert ok(server.get("/sessions?from=1000")) == {"from": 1000, "total": 5, "sessions": []}
    assert [s["id"] for s in ok(server.get("/sessions?from=4&size=100"))["sessions"]] == ids[4:]


def test_list_sessions_size_defaults_to_100(server):
    server.db.psql("INSERT INTO sessions (kind) SELECT 'shared' FROM generate_series(1, 130)")
    body = ok(server.get("/sessions"))
    assert body["total"] == 130 and len(body["sessions"]) == 100
    ids = [s["id"] for s in body["sessions"]]
    assert ids == sorted(ids)
    rest = ok(server.get("/sessions?from=100"))
    assert rest["total"] == 130 and len(rest["sessions"]) == 30
    assert rest["sessions"][0]["id"] > ids[-1]


# Values that every escape and stored-JSON spelling goes through: control characters, quotes,
# backslashes, slashes, non-ASCII, and JSON as the database's own functions write it (spaces
# after ':' and ',', lower-case \u escapes).
AWKWARD = "tab\there \"q\" back\\slash /slash \x01\x1f\x7f caf\u00e9 \u2028 \U0001F600"


def sql_text(value: str) -> str:
    """A PostgreSQL string literal for value (E'' syntax, every character escaped)."""
    return "E'" + "".join(f"\\U{ord(c):08x}" for c in value) + "'"


def page_text(body_from, total, objects) -> bytes:
    """The listing as it must be byte for byte: the objects as the per-id GETs wrote them."""
    return (f'{{"from":{body_from},"total":{total},"sessions":['.encode()
            + b",".join(objects) + b"]}")


def test_list_sessions_pages_over_many_rows_are_the_sessions_byte_for_byte(server):
    name = sql_text(AWKWARD)
    server.db.psql(
        "INSERT INTO sessions (name, kind, owner, proxy_user, state, app_id, driver_log_url,"
        " spark_ui_url, driver_memory, driver_cores, queue, ttl, conf, jars, files)"
        f" SELECT CASE WHEN g % 3 = 0 THEN {name} || g END, 'pyspark', 'u' || (g % 4),"
        " CASE WHEN g % 5 = 0 THEN 'p' END, CASE WHEN g % 7 = 0 THEN 'dead' ELSE 'idle' END,"
        " 'app-' || g, 'http://nm/' || g, CASE WHEN g % 2 = 0 THEN 'http://127.0.0.1:4040' END,"
        " '2g', g % 3, 'q' || g, '1h',"
        f" json_build_object('spark.k', {name}, 'n', g::text),"
        " json_build_array('a.jar', 'b\\u0001.jar'), '[\"f\"]'"
        " FROM generate_series(1, 250) g;"
        " UPDATE sessions SET ended_at = now() WHERE state = 'dead';"
        " UPDATE sessions SET deleted = true WHERE id % 11 = 0")
    server.db.psql(
        "INSERT INTO session_log (session_id, seq, line) SELECT s.id, g,"
        f" 'line ' || g || ' ' || {name} FROM sessions s, generate_series(0, 14) g"
        " WHERE g < s.id % 16")
    listed_ids = [int(r[0]) for r in server.db.psql("SELECT id FROM sessions WHERE NOT deleted ORDER BY id")]
    total = len(listed_ids)
    assert total > 200
    single = {sid: server.get(f"/sessions/{sid}").content for sid in listed_ids}
    pages = [(0, 100), (100, 100), (200, 100), (13, 7), (total - 1, 5), (total, 3)]
    for start, size in pages:
        r = server.get(f"/sessions?from={start}&size={size}")
        ok(r)
        ids = listed_ids[start:start + size]
        assert r.content == page_text(start, total, [single[i] for i in ids])
    default = ok(server.get("/sessions"))
    assert [s["id"] for s in default["sessions"]] == listed_ids[:100]
    for s in default["sessions"]:
        check_session(s)
        lines = s["id"] % 16
        assert s["log"] == [f"line {g} {AWKWARD}" for g in range(max(0, lines - 10), lines)]


def test_list_sessions_total_is_exact_after_concurrent_creates_and_deletes(server):
    first = [create(server, {"kind": "sql"})["id"] for _ in range(30)]

    def work(i):
        if i % 2:
            r = server.delete(f"/sessions/{first[i // 2]}")
            assert r.status_code == 200, r.text
        else:
            ok(server.post("/sessions", json={"kind": "sql"}), 201)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(60)))
    listed = int(row(server, "SELECT count(*) FROM sessions WHERE NOT deleted")[0])
    assert listed == 30 + 30 - 30
    body = ok(server.get("/sessions?size=1000"))
    assert body["total"] == listed == len(body["sessions"])
    assert not {s["id"] for s in body["sessions"]} & set(first[:30])


def test_log_tail_follows_lines_added_trimmed_and_removed(server):
    s = create(server, {"kind": "sql"})
    sid = s["id"]

    def tails():
        got = ok(server.get(f"/sessions/{sid}"))["log"]
        listed = {x["id"]: x["log"] for x in ok(server.get("/sessions"))["sessions"]}
        assert listed[sid] == got
        return got

    assert tails() == []
    add_log_lines(server, sid, [f"l{i}" for i in range(3)])
    assert tails() == ["l0", "l1", "l2"]
    # Appended as the supervisor does: the batch of lines, then the oldest trimmed.
    server.db.psql(f"INSERT INTO session_log (session_id, seq, line) SELECT {sid}, g, 'l' || g"
                   " FROM generate_series(3, 24) g")
    assert tails() == [f"l{i}" for i in range(15, 25)]
    server.db.psql(f"DELETE FROM session_log WHERE session_id = {sid} AND seq < 20")
    assert tails() == [f"l{i}" for i in range(20, 25)]
    server.db.psql(f"DELETE FROM session_log WHERE session_id = {sid} AND seq >= 23")
    assert tails() == ["l20", "l21", "l22"]
    server.db.psql(f"DELETE FROM session_log WHERE session_id = {sid}")
    assert tails() == []
    # Another session's lines leave this one alone.
    other = create(server, {"kind": "sql"})["id"]
    add_log_lines(server, other, ["o"])
    assert tails() == [] and ok(server.get(f"/sessions/{other}"))["log"] == ["o"]


def test_schema_3_fills_the_tails_of_existing_sessions_and_batches(pg, work_dir):
    """Upgrading a database at schema 2: every session's and batch's log_tail is its last 10
    lines, from the log the upgrade finds."""
    dbname = "upgrade_tails"
    pg.create_database(dbname, migrate=False)
    old = work_dir / "sql-2"
    old.mkdir(exist_ok=True)
    for f in ("001_initial.sql", "002_batches.sql"):
        shutil.copy(h.SQL_DIR / f, old / f)
    owner = pg.conninfo(dbname, h.OWNER_ROLE)
    run_dir = work_dir / "upgrade-run"
    run_dir.mkdir(exist_ok=True)
    for sql_dir in (old, h.SQL_DIR):
        conf = work_dir / f"upgrade-{sql_dir.name}.conf"
        conf.write_text(h.render_supervisor_conf(owner, run_dir, sql_dir=sql_dir))
        r = subprocess.run([str(h.SUPERVISOR), "--config", str(conf), "--migrate", "--database",
                            owner], capture_output=True, text=True, timeout=90)
        # (the older directory reaches version 2, which this build refuses to run on)
        assert r.returncode == (1 if sql_dir == old else 0), r.stderr
        if sql_dir == old:
            assert pg.psql("SELECT max(version) FROM livy_schema_version", db=dbname) == [("2",)]
            pg.psql("INSERT INTO sessions (kind) SELECT 'sql' FROM generate_series(0, 2);"
                    " INSERT INTO session_log (session_id, seq, line) SELECT 1, g, 's' || g"
                    "  FROM generate_series(0, 14) g;"
                    " INSERT INTO session_log (session_id, seq, line) VALUES (2, 7, 'only \"one\"');"
                    " INSERT INTO batches (file) SELECT 'x.py' FROM generate_series(0, 1);"
                    " INSERT INTO batch_log (batch_id, seq, line) SELECT 1, g, 'b' || g"
                    "  FROM generate_series(0, 3) g", db=dbname)
    assert pg.psql("SELECT max(version) FROM livy_schema_version", db=dbname) == [("6",)]
    # schema 5: the rows that were there are sessions, none of them warm; schema 6: none shared
    assert pg.psql("SELECT count(*) FILTER (WHERE warm), count(*) FILTER (WHERE shared_driver),"
                   " count(*) FROM sessions", db=dbname) == [("0", "0", "3")]
    tails = {int(i): json.loads(t) for i, t in
             pg.psql("SELECT id, log_tail::text FROM sessions ORDER BY id", db=dbname)}
    assert tails == {0: [], 1: [f"s{g}" for g in range(5, 15)], 2: ['only "one"']}
    tails = {int(i): json.loads(t) for i, t in
             pg.psql("SELECT id, log_tail::text FROM batches ORDER BY id", db=dbname)}
    assert tails == {0: [], 1: ["b0", "b1", "b2", "b3"]}


# ------------------------------------------------------------------ GET /sessions/{id}


def test_get_session_by_id_and_by_name_with_last_10_log_lines(server):
    s = create(server, {"name": "by-name", "kind": "spark"})
    other = create(server, {"name": "other"})
    add_log_lines(server, s["id"], [f"line {i}" for i in range(15)])
    by_id = check_session(ok(server.get(f"/sessions/{s['id']}")))
    by_name = check_session(ok(server.get("/sessions/by-name")))
    assert by_id == by_name
    assert by_id["id"] == s["id"] and by_id["name"] == "by-name" and by_id["kind"] == "spark"
    assert by_id["log"] == [f"line {i}" for i in range(5, 15)]
    assert ok(server.get("/sessions/other"))["id"] == other["id"]
    assert ok(server.get(f"/sessions/{other['id']}"))["log"] == []
    # The listing carries the same log field.
    listed = {x["id"]: x for x in ok(server.get("/sessions"))["sessions"]}
    assert listed[s["id"]]["log"] == by_id["log"]


def test_get_unknown_session_is_404_naming_it(server):
    msg = err(server.get("/sessions/424242"), 404)
    assert msg == "Session '424242' not found."
    msg = err(server.get("/sessions/no-such-name"), 404)
    assert "no-such-name" in msg


# ------------------------------------------------------------------ GET /sessions/{id}/state


def test_session_state(server):
    s = create(server, {"name": "st"})
    body = ok(server.get(f"/sessions/{s['id']}/state"))
    assert list(body) == ["id", "state"]
    assert body == {"id": s["id"], "state": "not_started"}
    assert ok(server.get("/sessions/st/state")) == body
    server.db.psql(f"UPDATE sessions SET state = 'idle' WHERE id = {s['id']}")
    assert ok(server.get(f"/sessions/{s['id']}/state")) == {"id": s["id"], "state": "idle"}


# ------------------------------------------------------------------ GET /sessions/{id}/log, /logs


@pytest.mark.parametrize("route", ["log", "logs"])
def test_session_log_paging(server, route):
    s = create(server)
    sid = s["id"]
    lines = [f"log line {i}" for i in range(250)]
    add_log_lines(server, sid, lines)
    assert row(server, f"SELECT next_log_seq FROM sessions WHERE id = {sid}") == ("250",)
    base = f"/sessions/{sid}/{route}"

    body = ok(server.get(base))  # the tail by default, 100 lines
    assert list(body) == ["id", "from", "total", "log"]
    assert body == {"id": sid, "from": 150, "total": 250, "log": lines[150:]}
    assert ok(server.get(f"{base}?from=0&size=10")) == {"id": sid, "from": 0, "total": 250, "log": lines[:10]}
    assert ok(server.get(f"{base}?size=5")) == {"id": sid, "from": 245, "total": 250, "log": lines[245:]}
    assert ok(server.get(f"{base}?from=240")) == {"id": sid, "from": 240, "total": 250, "log": lines[240:]}
    assert ok(server.get(f"{base}?from=100&size=3")) == {"id": sid, "from": 100, "total": 250,
                                                        "log": lines[100:103]}
    assert ok(server.get(f"{base}?size=-1")) == {"id": sid, "from": 0, "total": 250, "log": lines}
    assert ok(server.get(f"{base}?from=300"))["log"] == []
    assert ok(server.get(f"{base}?size=0"))["log"] == []


def test_session_log_empty_and_short(server):
    s = create(server)
    assert ok(server.get(f"/sessions/{s['id']}/log")) == {"id": s["id"], "from": 0, "total": 0, "log": []}
    add_log_lines(server, s["id"], ["a", "b", "c"])
    assert ok(server.get(f"/sessions/{s['id']}/log")) == {"id": s["id"], "from": 0, "total": 3,
                                                          "log": ["a", "b", "c"]}


# ------------------------------------------------------------------ DELETE /sessions/{id}


def test_delete_session(server):
    keep = create(server, {"name": "keep"})
    s = create(server, {"name": "doomed"})
    post_code(server, s["id"])
    r = server.delete(f"/sessions/{s['id']}")
    assert ok(r) == {"msg": "deleted"}
    assert "doomed" in err(server.get("/sessions/doomed"), 404)
    assert str(s["id"]) in err(server.get(f"/sessions/{s['id']}"), 404)
    err(server.get(f"/sessions/{s['id']}/state"), 404)
    err(server.get(f"/sessions/{s['id']}/statements"), 404)
    body = ok(server.get("/sessions"))
    assert [x["id"] for x in body["sessions"]] == [keep["id"]] and body["total"] == 1
    # Recorded as a request the supervisor acts on; nobody claimed it, so it is over at once.
    deleted, stop, state, ended = row(server, "SELECT deleted, stop_requested, state, ended_at IS NOT NULL "
                                              f"FROM sessions WHERE id = {s['id']}")
    assert (deleted, stop, state, ended) == ("t", "delete", "dead", "t")
    # Twice: it is gone.
    err(server.delete(f"/sessions/{s['id']}"), 404)
    # By name.
    assert ok(server.delete("/sessions/keep")) == {"msg": "deleted"}
    assert ok(server.get("/sessions")) == {"from": 0, "total": 0, "sessions": []}


# ------------------------------------------------------------------ POST /sessions/{id}/connect


def test_connect_returns_the_session_and_records_activity(server):
    s = create(server, {"name": "conn", "kind": "sql"})
    server.db.psql(f"UPDATE sessions SET last_activity_at = now() - interval '1 hour' WHERE id = {s['id']}")
    r = server.post(f"/sessions/{s['id']}/connect")
    assert check_session(ok(r)) == s
    recent, = row(server, "SELECT last_activity_at > now() - interval '1 minute' "
                          f"FROM sessions WHERE id = {s['id']}")
    assert recent == "t"
    assert ok(server.post("/sessions/conn/connect", json={}))["id"] == s["id"]


# ------------------------------------------------------------------ POST /sessions/{id}/stop


def test_stop_is_204_without_body_and_the_session_stays_listed_dead(server):
    s = create(server, {"name": "to-stop"})
    r = server.post(f"/sessions/{s['id']}/stop")
    assert r.status_code == 204, r.text
    assert r.content == b""
    listed = ok(server.get("/sessions"))
    assert listed["total"] == 1 and listed["sessions"][0]["id"] == s["id"]
    assert listed["sessions"][0]["state"] == "dead"
    assert ok(server.get(f"/sessions/{s['id']}/state")) == {"id": s["id"], "state": "dead"}
    stop, state, ended, deleted = row(server, "SELECT stop_requested, state, ended_at IS NOT NULL, deleted "
                                              f"FROM sessions WHERE id = {s['id']}")
    assert (stop, state, ended, deleted) == ("stop", "dead", "t", "f")
    # Acting on an ended session: statements and connect are 400 (a client mistake, not a 500).
    assert "dead" in err(server.post(f"/sessions/{s['id']}/statements", json={"code": "1", "kind": "sql"}), 400)
    assert "dead" in err(server.post(f"/sessions/{s['id']}/connect"), 400)
    assert row(server, f"SELECT count(*) FROM statements WHERE session_id = {s['id']}") == ("0",)
    # Stopping again changes nothing.
    assert server.post(f"/sessions/{s['id']}/stop").status_code == 204
    assert ok(server.get(f"/sessions/{s['id']}/state"))["state"] == "dead"


# ------------------------------------------------------------------ POST /sessions/{id}/statements


def test_post_statement(server):
    s = create(server, {"kind": "pyspark"})
    r = server.post(f"/sessions/{s['id']}/statements", json={"code": "1 + 1"})
    st = check_statement(ok(r, 201))
    assert r.headers["Location"] == f"/sessions/{s['id']}/statements/0"
    assert st == {"id": 0, "code": "1 + 1", "state": "waiting", "output": None, "progress": 0.0,
                  "started": 0, "completed": 0}
    # A statement row, waiting, with the session's next id advanced in the same transaction.
    assert server.db.psql(f"SELECT id, code, kind, state, cancel_requested FROM statements "
                          f"WHERE session_id = {s['id']}") == [("0", "1 + 1", "pyspark", "waiting", "f")]
    assert row(server, f"SELECT next_statement_id, state FROM sessions WHERE id = {s['id']}") == ("1", "not_started")
    st1 = post_code(server, s["id"], "2 + 2", kind=None)
    assert st1["id"] == 1
    assert row(server, f"SELECT next_statement_id FROM sessions WHERE id = {s['id']}") == ("2",)
    assert ok(server.get(r.headers["Location"])) == st


def test_statement_ids_count_from_0_per_session(server):
    a = create(server, {"kind": "sql"})
    b = create(server, {"kind": "sql"})
    assert [post_code(server, a["id"], kind=None)["id"] for _ in range(3)] == [0, 1, 2]
    assert [post_code(server, b["id"], kind=None)["id"] for _ in range(2)] == [0, 1]


@pytest.mark.parametrize("state", ["not_started", "starting", "idle", "busy"])
def test_statements_queue_while_the_session_is_active(server, state):
    s = create(server, {"kind": "pyspark"})
    server.db.psql(f"UPDATE sessions SET state = '{state}' WHERE id = {s['id']}")
    st = post_code(server, s["id"], "x = 1", kind=None)
    assert st["state"] == "waiting"


@pytest.mark.parametrize("state", ["shutting_down", "error", "dead", "killed", "success"])
def test_statements_on_an_ended_session_are_400(server, state):
    s = create(server, {"kind": "pyspark"})
    ended = "now()" if state != "shutting_down" else "NULL"
    server.db.psql(f"UPDATE sessions SET state = '{state}', ended_at = {ended} WHERE id = {s['id']}")
    msg = err(server.post(f"/sessions/{s['id']}/statements", json={"code": "1"}), 400)
    assert state in msg
    assert row(server, f"SELECT count(*) FROM statements WHERE session_id = {s['id']}") == ("0",)
    assert row(server, f"SELECT next_statement_id FROM sessions WHERE id = {s['id']}") == ("0",)


def test_shared_session_statement_needs_a_kind(server):
    s = create(server)  # kind shared by default
    msg = err(server.post(f"/sessions/{s['id']}/statements", json={"code": "1 + 1"}), 400)
    assert "kind" in msg
    assert row(server, f"SELECT count(*) FROM statements WHERE session_id = {s['id']}") == ("0",)
    # With a kind (aliases canonicalised), it queues.
    for given, canonical in [("python", "pyspark"), ("scala", "spark"), ("r", "sparkr"), ("sql", "sql"),
                             ("pyspark", "pyspark")]:
        st = post_code(server, s["id"], f"-- {given}", kind=given)
        assert row(server, f"SELECT kind FROM statements WHERE session_id = {s['id']} AND id = {st['id']}") \
            == (canonical,)


@pytest.mark.parametrize("kind", ["spark", "pyspark", "sparkr", "sql"])
def test_typed_session_statement_without_kind_takes_the_sessions(server, kind):
    s = create(server, {"kind": kind})
    st = post_code(server, s["id"], "code", kind=None)
    assert row(server, f"SELECT kind FROM statements WHERE session_id = {s['id']} AND id = {st['id']}") == (kind,)


# ------------------------------------------------------------------ GET /sessions/{id}/statements


def test_list_statements_paging_and_order(server):
    s = create(server, {"kind": "sql", "name": "stmts"})
    sid = s["id"]
    assert ok(server.get(f"/sessions/{sid}/statements")) == {"total_statements": 0, "statements": []}
    posted = [post_code(server, sid, f"SELECT {i}", kind=None) for i in range(6)]
    body = ok(server.get(f"/sessions/{sid}/statements"))
    assert list(body) == ["total_statements", "statements"]
    assert body["total_statements"] == 6
    assert body["statements"] == posted
    for st in body["statements"]:
        check_statement(st)
    ids = lambda q: [x["id"] for x in ok(server.get(f"/sessions/{sid}/statements{q}"))["statements"]]  # noqa: E731
    assert ids("?from=2&size=2") == [2, 3]
    assert ids("?order=desc") == [5, 4, 3, 2, 1, 0]
    assert ids("?order=desc&from=1&size=2") == [4, 3]
    assert ids("?order=asc&size=1") == [0]
    assert ids("?from=6") == []
    assert ids("?size=0") == []
    # total_statements is all of them, not the page.
    assert ok(server.get(f"/sessions/{sid}/statements?size=1"))["total_statements"] == 6
    assert ok(server.get("/sessions/stmts/statements"))["total_statements"] == 6


def test_list_statements_are_the_statements_byte_for_byte(server):
    sid = create(server, {"kind": "pyspark"})["id"]
    codes = ["1 + 1", AWKWARD, "print('x')\n\x1b[0m", ""]
    for i in range(12):
        post_code(server, sid, codes[i % len(codes)])
    # Outputs as the supervisor stores them: jansson's compact text, or the database's
    # json_build_object (a session that died under its statements); progress of every kind.
    server.db.psql(
        "UPDATE statements SET state = 'available', started = 1716200000000 + id,"
        " completed = CASE WHEN id % 2 = 0 THEN 1716200000500 + id ELSE 0 END,"
        " progress = CASE id % 4 WHEN 0 THEN 1 WHEN 1 THEN 1.0 / 3 WHEN 2 THEN 0.1 ELSE 0 END,"
        " output = CASE id % 3"
        "  WHEN 0 THEN ('{\"status\":\"ok\",\"execution_count\":' || id"
        "   || ',\"data\":{\"text/plain\":\"caf\u00e9 \\\\u0001\"}}')::json"
        "  WHEN 1 THEN json_build_object('status', 'error', 'execution_count', id,"
        f"   'ename', 'SessionDead', 'evalue', {sql_text(AWKWARD)}, 'traceback', json_build_array())"
        "  END"
        f" WHERE session_id = {sid}")
    single = [server.get(f"/sessions/{sid}/statements/{i}").content for i in range(12)]
    for query, ids in [("", range(12)), ("?from=3&size=4", range(3, 7)),
                       ("?order=desc&size=5", range(11, 6, -1)), ("?from=12", [])]:
        r = server.get(f"/sessions/{sid}/statements{query}")
        ok(r)
        assert r.content == (b'{"total_statements":12,"statements":['
                             + b",".join(single[i] for i in ids) + b"]}"), query
    for st in ok(server.get(f"/sessions/{sid}/statements"))["statements"]:
        check_statement(st)


def test_list_statements_is_capped(server):
    """A page holds at most 1000 statements; without `from` and `size` the newest 100 (Livy lists
    the statements it retains, its most recent ones)."""
    s = create(server, {"kind": "sql"})
    sid = s["id"]
    # 1,050 statements straight into the table (the route is tested above; this is about paging).
    server.db.psql(f"INSERT INTO statements (session_id, id, code, kind, state) "
                  f"SELECT {sid}, g, 'SELECT ' || g, 'sql', 'waiting' FROM generate_series(0, 1049) g; "
                  f"UPDATE sessions SET next_statement_id = 1050 WHERE id = {sid}")
    page = lambda q: ok(server.get(f"/sessions/{sid}/statements{q}"))  # noqa: E731
    body = page("")
    assert body["total_statements"] == 1050
    assert [x["id"] for x in body["statements"]] == list(range(950, 1050))
    assert [x["id"] for x in page("?order=desc")["statements"]] == list(range(1049, 949, -1))
    assert [x["id"] for x in page("?size=1000")["statements"]] == list(range(1000))
    assert [x["id"] for x in page("?from=1000&size=1000")["statements"]] == list(range(1000, 1050))
    assert [x["id"] for x in page("?order=desc&from=1000&size=1000")["statements"]] == list(range(49, -1, -1))
    assert page("?from=5000")["statements"] == []
    for q, what in (("?size=1001", "at most 1000"), ("?size=99999999", "at most 1000"),
                    ("?from=-1", "between"), ("?size=x", "integer")):
        assert what in err(server.get(f"/sessions/{sid}/statements{q}"), 400)


# ------------------------------------------------------------------ GET /sessions/{id}/statements/{sid}


def test_get_statement(server):
    s = create(server, {"kind": "pyspark"})
    posted = [post_code(server, s["id"], f"print({i})", kind=None) for i in range(3)]
    for st in posted:
        got = check_statement(ok(server.get(f"/sessions/{s['id']}/statements/{st['id']}")))
        assert got == st
    msg = err(server.get(f"/sessions/{s['id']}/statements/3"), 404)
    assert "3" in msg
    err(server.get(f"/sessions/{s['id']}/statements/abc"), 404)


# ------------------------------------------------------------------ POST .../statements/{sid}/cancel


def test_cancel_a_waiting_statement(server):
    s = create(server, {"kind": "pyspark"})
    a = post_code(server, s["id"], "while True: pass", kind=None)
    b = post_code(server, s["id"], "other", kind=None)
    r = server.post(f"/sessions/{s['id']}/statements/{a['id']}/cancel")  # no body
    assert ok(r) == {"msg": "canceled"}
    got = check_statement(ok(server.get(f"/sessions/{s['id']}/statements/{a['id']}")))
    assert got["state"] == "cancelled" and got["progress"] == 1.0 and got["output"] is None
    assert got["completed"] > 0
    state, requested = row(server, "SELECT state, cancel_requested FROM statements "
                                   f"WHERE session_id = {s['id']} AND id = {a['id']}")
    assert (state, requested) == ("cancelled", "t")
    # The other statement is untouched; a body of {} is accepted too.
    assert ok(server.get(f"/sessions/{s['id']}/statements/{b['id']}"))["state"] == "waiting"
    assert ok(server.post(f"/sessions/{s['id']}/statements/{b['id']}/cancel", json={})) == {"msg": "canceled"}
    assert ok(server.get(f"/sessions/{s['id']}/statements/{b['id']}"))["state"] == "cancelled"
    # Cancelling again is harmless; an unknown statement is a 404.
    assert ok(server.post(f"/sessions/{s['id']}/statements/{a['id']}/cancel")) == {"msg": "canceled"}
    err(server.post(f"/sessions/{s['id']}/statements/99/cancel"), 404)


def test_cancel_records_a_request_for_a_running_statement(server):
    s = create(server, {"kind": "pyspark"})
    a = post_code(server, s["id"], "while True: pass", kind=None)
    server.db.psql(f"UPDATE statements SET state = 'running', started = 1 WHERE session_id = {s['id']} "
                   f"AND id = {a['id']}")
    assert ok(server.post(f"/sessions/{s['id']}/statements/{a['id']}/cancel")) == {"msg": "canceled"}
    # The supervisor acts on it; until then the statement is still running.
    state, requested = row(server, "SELECT state, cancel_requested FROM statements "
                                   f"WHERE session_id = {s['id']} AND id = {a['id']}")
    assert (state, requested) == ("running", "t")


# ------------------------------------------------------------------ POST /sessions/{id}/completion


def test_completion(server):
    s = create(server, {"kind": "pyspark"})
    server.db.psql(f"UPDATE sessions SET last_activity_at = now() - interval '1 hour' WHERE id = {s['id']}")
    body = ok(server.post(f"/sessions/{s['id']}/completion",
                          json={"code": "import o", "kind": "pyspark", "cursor": 8}))
    assert list(body) == ["candidates"]
    assert isinstance(body["candidates"], list) and all(isinstance(c, str) for c in body["candidates"])
    recent, = row(server, "SELECT last_activity_at > now() - interval '1 minute' "
                          f"FROM sessions WHERE id = {s['id']}")
    assert recent == "t"
    # Statement kinds' aliases are accepted here too.
    assert "candidates" in ok(server.post(f"/sessions/{s['id']}/completion",
                                          json={"code": "sc.", "kind": "scala", "cursor": 3}))


# ------------------------------------------------------------------ NOTIFY


def test_writes_notify_the_supervisor_with_their_commit(server):
    """A psql session LISTENs on the supervisor's channels while requests are made; psql prints
    what it received when its next query completes. Failed requests notify nobody (the NOTIFY is
    in the same transaction as the row), reads notify nobody. A new statement's notification
    carries the statement ("session:id:kind:code") when its code fits (7680 bytes), else only
    the session's id."""
    big = "x = 1  # " + "y" * 7672  # 7681 bytes
    with server.db.listen("livy_sessions", "livy_statements") as listener:
        a = create(server, {"name": "a", "kind": "pyspark"})
        b = create(server, {"name": "b", "kind": "sql"})
        err(server.post("/sessions", json={"name": "a"}), 400)                      # duplicate: none
        st = post_code(server, a["id"], kind=None)
        fits = post_code(server, a["id"], code=big[:7680], kind="sql")
        too_big = post_code(server, a["id"], code=big)
        err(server.post(f"/sessions/{a['id']}/statements", json={"code": 1}), 400)  # none
        ok(server.get(f"/sessions/{a['id']}"))                                      # reads: none
        ok(server.get(f"/sessions/{a['id']}/statements"))
        ok(server.post(f"/sessions/{a['id']}/statements/{st['id']}/cancel"))
        assert server.post(f"/sessions/{b['id']}/stop").status_code == 204
        err(server.post(f"/sessions/{b['id']}/statements", json={"code": "1"}), 400)  # ended: none
        ok(server.delete(f"/sessions/{a['id']}"))
        got = listener.received()
    assert got == [
        ("livy_sessions", str(a["id"])),     # create a
        ("livy_sessions", str(b["id"])),     # create b
        ("livy_statements", f"{a['id']}:{st['id']}:pyspark:1 + 1"),  # statement in a
        ("livy_statements", f"{a['id']}:{fits['id']}:sql:{big[:7680]}"),  # it fits
        ("livy_statements", str(a["id"])),   # 7681 bytes of code: read back by the supervisor
        ("livy_statements", str(a["id"])),   # cancel in a
        ("livy_sessions", str(b["id"])),     # stop b
        ("livy_sessions", str(a["id"])),     # delete a
    ], listener.output


# ------------------------------------------------------------------ transport


def test_every_response_is_json(server):
    s = create(server, {"kind": "pyspark", "name": "j"})
    st = post_code(server, s["id"], kind=None)
    requests_ = [
        ("GET", "/version", None), ("GET", "/sessions", None), ("POST", "/sessions", {}),
        ("GET", f"/sessions/{s['id']}", None), ("GET", "/sessions/j", None),
        ("GET", f"/sessions/{s['id']}/state", None), ("GET", f"/sessions/{s['id']}/log", None),
        ("GET", f"/sessions/{s['id']}/logs", None), ("POST", f"/sessions/{s['id']}/connect", None),
        ("GET", f"/sessions/{s['id']}/statements", None),
        ("GET", f"/sessions/{s['id']}/statements/{st['id']}", None),
        ("POST", f"/sessions/{s['id']}/statements/{st['id']}/cancel", None),
        ("POST", f"/sessions/{s['id']}/completion", {"code": "x", "kind": "pyspark", "cursor": 1}),
        # errors
        ("GET", "/nope", None), ("PUT", "/sessions", None), ("GET", "/sessions/999999", None),
        ("POST", "/sessions", {"bogus": 1}), ("GET", f"/sessions/{s['id']}/statements/77", None),
        ("DELETE", f"/sessions/{s['id']}", None),
    ]
    for method, path, body in requests_:
        r = server.request(method, path, json=body)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        assert is_json(r), (method, path, r.headers)
        assert r.headers["Content-Type"].lower().replace(" ", "") in (
            "application/json", "application/json;charset=utf-8"), r.headers["Content-Type"]
        assert isinstance(r.json(), dict)
        assert int(r.headers["Content-Length"]) == len(r.content)


def test_head_answers_like_get_without_a_body(server):
    s = create(server, {"kind": "sql", "name": "h"})
    post_code(server, s["id"], kind=None)
    for path in ("/version", "/sessions", f"/sessions/{s['id']}", "/sessions/h", f"/sessions/{s['id']}/state",
                 f"/sessions/{s['id']}/log", f"/sessions/{s['id']}/statements",
                 f"/sessions/{s['id']}/statements/0"):
        g = server.get(path)
        h_ = server.request("HEAD", path)
        assert g.status_code == h_.status_code == 200, (path, h_.status_code)
        assert h_.content == b""
        assert is_json(h_), h_.headers
        assert h_.headers["Content-Length"] == g.headers["Content-Length"] == str(len(g.content))
    h_ = server.request("HEAD", "/sessions/404404")
    assert h_.status_code == 404 and h_.content == b"" and is_json(h_)


def test_trailing_and_repeated_slashes_reach_the_same_route(server):
    s = create(server, {"name": "slashy"})
    assert ok(server.get("/sessions/"))["total"] == 1
    assert ok(server.get(f"/sessions/{s['id']}/"))["id"] == s["id"]
    assert ok(server.get(f"//sessions//{s['id']}//state"))["state"] == "not_started"
