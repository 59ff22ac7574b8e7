"""PostgreSQL is the only state (issue 3, "Shared state"): two httpd instances on one database, and
one prefork httpd with several children, show the same sessions and statements; statement ids are
gapless from 0 under concurrency; session ids never repeat; writes during a database outage fail
cleanly (503 JSON) and lose nothing.

(That a running httpd answers 503 while PostgreSQL is down and 200 again from the same pid once it
is back is test_foundation.py's test_database_down_gives_503_and_recovers_without_restart; the
outage test here is about writes and the data around them.)"""

from __future__ import annotations

import threading
import time
from collections import Counter

import requests

import livy_harness as h

THREADS = 8
PER_THREAD = 50


def ok(r, status=200):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    return r.json()


def err(r, status):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert list(body) == ["msg"] and isinstance(body["msg"], str) and body["msg"], body
    return body["msg"]


def other_mpm(mpm: str) -> str:
    return "prefork" if mpm == "event" else "event"


def run_threads(n: int, target) -> list:
    """Runs target(i) in n threads started together; returns their results, re-raising failures."""
    results = [None] * n
    errors = []
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(30)
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------ two instances


def test_two_instances_on_one_database_see_the_same_sessions_and_statements(livy_server, clean_db, mpm):
    a = livy_server(mpm=mpm)
    b = livy_server(mpm=other_mpm(mpm))
    assert a.port != b.port

    s = ok(a.post("/sessions", json={"kind": "pyspark", "name": "shared-one", "conf": {"spark.x": 1}}), 201)
    sid = s["id"]
    assert ok(b.get(f"/sessions/{sid}")) == s
    assert ok(b.get("/sessions/shared-one")) == s
    assert ok(a.get("/sessions")) == ok(b.get("/sessions"))
    # The name is taken for both.
    assert "shared-one" in err(b.post("/sessions", json={"name": "shared-one"}), 400)

    # Statements posted alternately through both get one gapless sequence.
    posted = []
    for i in range(10):
        srv = a if i % 2 == 0 else b
        posted.append(ok(srv.post(f"/sessions/{sid}/statements", json={"code": f"x = {i}"}), 201))
    assert [st["id"] for st in posted] == list(range(10))
    assert [st["code"] for st in posted] == [f"x = {i}" for i in range(10)]
    la, lb = ok(a.get(f"/sessions/{sid}/statements")), ok(b.get(f"/sessions/{sid}/statements"))
    assert la == lb and la["total_statements"] == 10 and la["statements"] == posted
    for st in posted:
        assert ok(a.get(f"/sessions/{sid}/statements/{st['id']}")) == ok(b.get(f"/sessions/{sid}/statements/{st['id']}"))

    # A cancel through one is seen through the other.
    assert ok(b.post(f"/sessions/{sid}/statements/3/cancel")) == {"msg": "canceled"}
    assert ok(a.get(f"/sessions/{sid}/statements/3"))["state"] == "cancelled"

    # Log lines written once are served by both.
    clean_db.psql(f"INSERT INTO session_log (session_id, seq, line) VALUES ({sid}, 0, 'hello'), ({sid}, 1, 'world')")
    assert ok(a.get(f"/sessions/{sid}/log")) == ok(b.get(f"/sessions/{sid}/log")) == \
        {"id": sid, "from": 0, "total": 2, "log": ["hello", "world"]}

    # Stop through A: B sees it dead and refuses code.
    assert a.post(f"/sessions/{sid}/stop").status_code == 204
    assert ok(b.get(f"/sessions/{sid}/state")) == {"id": sid, "state": "dead"}
    err(b.post(f"/sessions/{sid}/statements", json={"code": "1"}), 400)

    # Delete through B: gone for A.
    t = ok(b.post("/sessions", json={"kind": "sql"}), 201)
    assert ok(a.get(f"/sessions/{t['id']}"))["kind"] == "sql"
    assert ok(b.delete(f"/sessions/{t['id']}")) == {"msg": "deleted"}
    err(a.get(f"/sessions/{t['id']}"), 404)
    la, lb = ok(a.get("/sessions")), ok(b.get("/sessions"))
    assert la == lb and [x["id"] for x in la["sessions"]] == [sid]


def test_two_instances_posting_concurrently_share_one_gapless_sequence(livy_server, clean_db, mpm):
    a = livy_server(mpm=mpm)
    b = livy_server(mpm=other_mpm(mpm))
    sid = ok(a.post("/sessions", json={"kind": "sql"}), 201)["id"]

    def worker(i):
        srv = a if i % 2 == 0 else b
        with requests.Session() as http:
            return [ok(http.post(f"{srv.url}/sessions/{sid}/statements", json={"code": f"SELECT {i}, {k}"},
                                 timeout=30), 201)["id"] for k in range(25)]

    ids = [x for chunk in run_threads(8, worker) for x in chunk]
    assert sorted(ids) == list(range(200))
    assert ok(b.get(f"/sessions/{sid}/statements?size=0"))["total_statements"] == 200
    assert clean_db.psql(f"SELECT count(*), count(DISTINCT id), min(id), max(id) FROM statements "
                         f"WHERE session_id = {sid}") == [("200", "200", "0", "199")]


# ------------------------------------------------------------------ one prefork httpd, many children


def test_prefork_children_serve_one_consistent_state(livy_server, clean_db):
    srv = livy_server(mpm="prefork", extra_conf=(
        "StartServers 6\nMinSpareServers 6\nMaxSpareServers 12\n"
        'CustomLog "logs/pid_log" "%P %>s %m %U"\n'))
    sid = ok(srv.post("/sessions", json={"kind": "pyspark", "name": "forked"}), 201)["id"]

    def worker(i):
        seen = []
        for k in range(15):
            # A new connection for every request (no Session): any child may take it.
            st = ok(requests.post(f"{srv.url}/sessions/{sid}/statements", json={"code": f"{i}-{k}"},
                                  timeout=30), 201)
            # Read-your-writes through whichever child answers next.
            got = ok(requests.get(f"{srv.url}/sessions/{sid}/statements/{st['id']}", timeout=30))
            assert got == st
            listed = ok(requests.get(f"{srv.url}/sessions/forked/statements?order=desc&size=1", timeout=30))
            assert listed["total_statements"] >= st["id"] + 1
            # A session created now is visible at once from any child.
            s = ok(requests.post(f"{srv.url}/sessions", json={"name": f"c-{i}-{k}"}, timeout=30), 201)
            assert ok(requests.get(f"{srv.url}/sessions/c-{i}-{k}", timeout=30))["id"] == s["id"]
            seen.append(st["id"])
        return seen

    ids = [x for chunk in run_threads(THREADS, worker) for x in chunk]
    assert sorted(ids) == list(range(THREADS * 15))
    assert ok(srv.get("/sessions?size=0"))["total"] == 1 + THREADS * 15
    # The same answers from every child.
    answers = {requests.get(f"{srv.url}/sessions/{sid}/statements", timeout=30).text for _ in range(40)}
    assert len(answers) == 1
    # And it really was several children.
    pids = Counter(line.split()[0] for line in (srv.root / "logs" / "pid_log").read_text().splitlines())
    assert len(pids) >= 3, pids


# ------------------------------------------------------------------ concurrency on one session


def test_concurrent_statements_get_ids_exactly_0_to_399(server, clean_db):
    sid = ok(server.post("/sessions", json={"kind": "pyspark"}), 201)["id"]

    def worker(i):
        out = []
        with requests.Session() as http:
            for k in range(PER_THREAD):
                r = http.post(f"{server.url}/sessions/{sid}/statements", json={"code": f"t{i}-{k}"}, timeout=60)
                st = ok(r, 201)
                assert r.headers["Location"] == f"/sessions/{sid}/statements/{st['id']}"
                out.append((st["id"], st["code"]))
        return out

    results = run_threads(THREADS, worker)
    ids = [i for chunk in results for i, _ in chunk]
    assert len(ids) == THREADS * PER_THREAD
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"duplicate ids: {dupes[:20]}"
    missing = sorted(set(range(THREADS * PER_THREAD)) - set(ids))
    assert not missing, f"gaps: {missing[:20]}"
    assert sorted(ids) == list(range(400))
    # Each client saw its own statements numbered in the order it posted them.
    for chunk in results:
        assert [i for i, _ in chunk] == sorted(i for i, _ in chunk)

    body = ok(server.get(f"/sessions/{sid}/statements?size=1000"))
    assert body["total_statements"] == 400
    assert [st["id"] for st in body["statements"]] == list(range(400))
    by_id = {st["id"]: st["code"] for st in body["statements"]}
    assert all(by_id[i] == code for chunk in results for i, code in chunk)
    assert clean_db.psql(f"SELECT count(*), count(DISTINCT id), min(id), max(id) FROM statements "
                         f"WHERE session_id = {sid}") == [("400", "400", "0", "399")]
    assert clean_db.psql(f"SELECT next_statement_id FROM sessions WHERE id = {sid}") == [("400",)]
    assert clean_db.psql(f"SELECT count(*) FROM statements WHERE session_id = {sid} AND state <> 'waiting'") \
        == [("0",)]


def test_concurrent_statements_to_several_sessions_number_each_from_0(server, clean_db):
    sids = [ok(server.post("/sessions", json={"kind": "sql"}), 201)["id"] for _ in range(4)]

    def worker(i):
        with requests.Session() as http:
            return [(sids[(i + k) % 4], ok(http.post(f"{server.url}/sessions/{sids[(i + k) % 4]}/statements",
                                                     json={"code": "SELECT 1"}, timeout=60), 201)["id"])
                    for k in range(20)]

    pairs = [p for chunk in run_threads(THREADS, worker) for p in chunk]
    for sid in sids:
        got = sorted(i for s, i in pairs if s == sid)
        assert got == list(range(len(got))) and len(got) == THREADS * 20 // 4, (sid, got)


def test_concurrent_session_creates_get_distinct_ids(server, clean_db):
    def worker(i):
        with requests.Session() as http:
            return [ok(http.post(f"{server.url}/sessions", json={"name": f"w{i}-{k}"}, timeout=60), 201)["id"]
                    for k in range(10)]

    ids = [x for chunk in run_threads(THREADS, worker) for x in chunk]
    assert len(set(ids)) == len(ids) == THREADS * 10
    body = ok(server.get("/sessions"))
    assert body["total"] == THREADS * 10
    assert [s["id"] for s in body["sessions"]] == sorted(ids)


def test_concurrent_creates_of_one_name_let_exactly_one_win(server, clean_db):
    def worker(i):
        return requests.post(f"{server.url}/sessions", json={"name": "only-one"}, timeout=60)

    answers = run_threads(THREADS, worker)
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [400] * (THREADS - 1), codes
    for r in answers:
        if r.status_code == 400:
            assert "only-one" in err(r, 400)
    assert clean_db.psql("SELECT count(*) FROM sessions WHERE name = 'only-one'") == [("1",)]


# ------------------------------------------------------------------ session ids never repeat


def test_session_ids_never_repeat(server, clean_db):
    first = [ok(server.post("/sessions", json={}), 201)["id"] for _ in range(3)]
    assert first == sorted(first) and len(set(first)) == 3
    for sid in first:
        assert ok(server.delete(f"/sessions/{sid}")) == {"msg": "deleted"}
    second = [ok(server.post("/sessions", json={}), 201)["id"] for _ in range(3)]
    assert min(second) > max(first)
    # Stopped sessions too.
    for sid in second:
        assert server.post(f"/sessions/{sid}/stop").status_code == 204
    third = ok(server.post("/sessions", json={}), 201)["id"]
    assert third > max(second)
    # Even when the rows are gone from the database altogether.
    clean_db.clear()
    fourth = ok(server.post("/sessions", json={}), 201)["id"]
    assert fourth > third
    # A deleted id stays unknown, never re-used by a later session.
    for sid in first + second:
        err(server.get(f"/sessions/{sid}"), 404)


# ------------------------------------------------------------------ database outage


def test_writes_during_a_database_outage_are_503_and_lose_nothing(livy_server, private_pg, mpm):
    srv = livy_server(mpm=mpm, db=private_pg)
    srv.allow_errors(r"(?i)database|postgres|connect|server closed|terminat|pool|livy")
    pid = srv.pid
    s = ok(srv.post("/sessions", json={"kind": "pyspark", "name": "survivor"}), 201)
    posted = [ok(srv.post(f"/sessions/{s['id']}/statements", json={"code": f"x = {i}"}), 201) for i in range(3)]

    private_pg.stop("fast")
    for method, path, body in (("POST", "/sessions", {"kind": "sql"}),
                               ("POST", f"/sessions/{s['id']}/statements", {"code": "lost"}),
                               ("POST", f"/sessions/{s['id']}/statements/0/cancel", None),
                               ("POST", f"/sessions/{s['id']}/stop", None),
                               ("DELETE", f"/sessions/{s['id']}", None),
                               ("GET", f"/sessions/{s['id']}", None),
                               ("GET", "/version", None)):
        for _ in range(3):
            msg = err(srv.request(method, path, json=body), 503)
            assert "database" in msg.lower(), msg

    private_pg.start()
    # Every pooled connection finds out that its backend went away (one 503 each at most), so
    # wait for a long run of successes before checking the data.
    run, deadline = 0, time.monotonic() + 30
    while run < 40:
        assert time.monotonic() < deadline, "did not recover within 30 s"
        code = srv.get("/version").status_code
        assert code in (200, 503), code
        run = run + 1 if code == 200 else 0
    assert srv.pid == pid and h.process_alive(pid), "httpd was restarted"
    # Everything from before is intact, nothing from the outage exists.
    assert ok(srv.get(f"/sessions/{s['id']}")) == s
    assert ok(srv.get(f"/sessions/{s['id']}/statements"))["statements"] == posted
    assert ok(srv.get("/sessions"))["total"] == 1
    # And numbering continues without a gap.
    assert ok(srv.post(f"/sessions/{s['id']}/statements", json={"code": "after"}), 201)["id"] == 3
    assert ok(srv.post("/sessions", json={}), 201)["id"] > s["id"]
