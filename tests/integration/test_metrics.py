"""GET <mount>/metrics (LivyMetrics On): Prometheus text computed from PostgreSQL at each scrape,
read here with prometheus_client's own parser. Values follow sessions and statements made
through the API (no supervisor runs: sessions stay not_started, statements waiting); statement
durations and supervisors are rows written directly, as the supervisor would. Off (the default)
is the usual JSON 404; other methods are 405; under LivyAccessControl only superusers, view and
modify users may read; label values are escaped.

One httpd per MPM serves the module's tests (each test empties the database first); its mounts:
  /          Basic auth, access control, LivyMetrics On
             (alice allowed, carol superuser, erin view user, frank modify user, dave not admitted)
  /open      no authentication, no access control (LivyMetrics On inherited)
  /off       no authentication, LivyMetrics Off
"""

from __future__ import annotations

import http.client
import math
import re

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import livy_harness as h

USERS = ("alice", "carol", "dave", "erin", "frank")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FAMILIES = {
    "livy_sessions": "gauge",
    "livy_statements": "gauge",
    "livy_statement_duration_seconds": "histogram",
    "livy_supervisors": "gauge",
    "livy_supervisor_heartbeat_age_seconds": "gauge",
    "livy_supervisor_capacity": "gauge",
    "livy_supervisor_sessions": "gauge",
    "livy_supervisor_batches": "gauge",
    "livy_supervisor_warm_repls": "gauge",
    "livy_supervisor_warm_repls_starting": "gauge",
    "livy_batches": "gauge",
    "livy_session_start_duration_seconds": "histogram",
    "livy_http_requests": "counter",  # prometheus_client names a counter family without _total
    "livy_http_request_duration_seconds": "histogram",
    "livy_db_pool_connections": "gauge",
    "livy_db_pool_waits": "counter",
    "livy_db_pool_timeouts": "counter",
    "livy_db_pool_connects": "counter",
    "livy_db_pool_connect_failures": "counter",
    "livy_info": "gauge",
}
START_BOUNDS = ("1", "2", "5", "10", "20", "30", "60", "120", "300", "+Inf")
BOUNDS = ("0.01", "0.05", "0.1", "0.5", "1", "5", "10", "60", "300", "+Inf")


# ------------------------------------------------------------------ the server


@pytest.fixture(scope="module")
def htpasswd(work_dir):
    return h.write_htpasswd(work_dir / "metrics-htpasswd", USERS)


def metrics_conf(htpasswd) -> str:
    open_mount = "    AuthType None\n    Require all granted\n    LivyAccessControl Off\n"
    return (h.basic_auth_conf(htpasswd, """
                LivyAccessControl On
                LivyAllowedUsers alice
                LivySuperusers carol
                LivyViewUsers erin
                LivyModifyUsers frank
                LivyMetrics On
                """)
            + f"<Location /open>\n{open_mount}</Location>\n"
            + f"<Location /off>\n{open_mount}    LivyMetrics Off\n</Location>\n")


@pytest.fixture(scope="module", params=h.selected_mpms())
def metrics_server(request, work_dir, pg, htpasswd):
    factory = h.ServerFactory(work_dir, pg, f"metrics-{request.param}")
    try:
        srv = factory(mpm=request.param, extra_conf=metrics_conf(htpasswd))
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    yield srv
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def srv(metrics_server, clean_db):
    """The server on an emptied database; the test fails on new unexpected error-log lines."""
    before = len(metrics_server.unexpected_error_lines())
    yield metrics_server
    bad = metrics_server.unexpected_error_lines()[before:]
    assert not bad, "unexpected error-log lines:\n" + "\n".join(bad)


# ------------------------------------------------------------------ helpers


def call(srv, method, path, user=None, **kw):
    auth = (user, h.password(user)) if user else None
    return requests.request(method, srv.url + path, auth=auth, timeout=30, **kw)


def json_error(r, status):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), (r.headers, r.text[:300])
    body = r.json()
    assert list(body) == ["msg"] and isinstance(body["msg"], str) and body["msg"], body
    return body["msg"]


class Scrape:
    """One scrape, parsed by prometheus_client: families by name, and sample lookups."""

    def __init__(self, r: requests.Response):
        assert r.status_code == 200, f"{r.request.url}: {r.status_code} {r.text[:300]}"
        assert r.headers["Content-Type"] == CONTENT_TYPE, r.headers
        self.text = r.text
        self.families = {f.name: f for f in text_string_to_metric_families(r.text)}

    def samples(self, name: str) -> list:
        return [s for f in self.families.values() for s in f.samples if s.name == name]

    def value(self, name: str, **labels):
        """The value of the sample with exactly these labels, or None when there is none."""
        found = [s.value for s in self.samples(name) if s.labels == labels]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None

    def by(self, name: str, *keys) -> dict:
        """{label values: value} for every sample of name."""
        return {tuple(s.labels[k] for k in keys): s.value for s in self.samples(name)}


def scrape(srv, path="/open/metrics", user=None) -> Scrape:
    return Scrape(call(srv, "GET", path, user))


def create(srv, body=None) -> int:
    r = call(srv, "POST", "/open/sessions", json={} if body is None else body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def post_code(srv, sid, code="1 + 1") -> int:
    r = call(srv, "POST", f"/open/sessions/{sid}/statements", json={"code": code, "kind": "pyspark"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def add_supervisor(srv, host, capacity=4, age_s=0, stopped=False) -> str:
    """A supervisors row, as a livy-supervisor writes it at start (and its heartbeats since)."""
    host_sql = "E'" + host.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    stopped_at = "now()" if stopped else "NULL"
    rows = srv.db.psql(f"INSERT INTO supervisors (host, pid, capacity, heartbeat_at, stopped_at) "
                       f"VALUES ({host_sql}, 4242, {capacity}, now() - interval '{age_s} seconds', "
                       f"{stopped_at}) RETURNING id")
    return rows[0][0]


# ------------------------------------------------------------------ on, off, methods


def test_off_by_default_is_the_usual_404(server):
    """A server whose configuration never mentions LivyMetrics exposes nothing new."""
    for method in ("GET", "HEAD", "POST"):
        r = server.request(method, "/metrics")
        assert r.status_code == 404, (method, r.status_code, r.text[:200])
        assert r.headers["Content-Type"].startswith("application/json")
        if method != "HEAD":
            assert json_error(r, 404) == "No such resource: /metrics"


def test_off_explicitly_is_the_usual_404(srv):
    for method in ("GET", "POST", "DELETE"):
        assert json_error(call(srv, method, "/off/metrics"), 404) == "No such resource: /metrics"
    # the rest of that mount is served as usual
    assert call(srv, "GET", "/off/version").status_code == 200


def test_scrape_is_prometheus_text_with_help_and_type(srv):
    r = call(srv, "GET", "/open/metrics")
    s = Scrape(r)
    assert r.headers["Cache-Control"] == "no-store"
    for name, typ in FAMILIES.items():
        exposed = name + "_total" if typ == "counter" else name
        assert re.search(rf"^# HELP {exposed} \S.*$", s.text, re.M), name
        assert re.search(rf"^# TYPE {exposed} {typ}$", s.text, re.M), name
        assert s.families[name].type == typ
    assert set(s.families) == set(FAMILIES)
    assert s.text.endswith("\n") and "\n\n" not in s.text
    version = call(srv, "GET", "/open/version").json()
    assert s.by("livy_info", "version", "schema_version") == {
        (version["server"].split("/", 1)[1], str(version["schemaVersion"])): 1.0}
    # an empty database: nothing to count, yet every family is there, the histogram all zeros
    assert s.samples("livy_sessions") == [] and s.samples("livy_statements") == []
    assert s.value("livy_supervisors") == 0
    assert s.by("livy_statement_duration_seconds_bucket", "le") == {(b,): 0.0 for b in BOUNDS}
    assert s.value("livy_statement_duration_seconds_count") == 0
    assert s.value("livy_statement_duration_seconds_sum") == 0
    assert s.samples("livy_batches") == []
    assert s.by("livy_session_start_duration_seconds_bucket", "le") == {
        (b,): 0.0 for b in START_BOUNDS}


def test_head_has_the_headers_and_no_body(srv):
    r = call(srv, "HEAD", "/open/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == CONTENT_TYPE
    assert r.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(srv, method):
    r = call(srv, method, "/open/metrics", data=b"{}", headers={"Content-Type": "application/json"})
    msg = json_error(r, 405)
    assert r.headers["Allow"] == "GET, HEAD"
    assert method in msg


def test_query_string_is_ignored(srv):
    """As for /version: no parameter means anything here, and none is refused."""
    create(srv)
    for query in ("?name[]=livy_sessions", "?format=json&from=-1&size=x"):
        s = scrape(srv, "/open/metrics" + query)
        assert s.value("livy_sessions", state="not_started", kind="shared") == 1
    # a malformed escape too (sent raw: requests would re-quote it)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("GET", "/open/metrics?x=%zz")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == CONTENT_TYPE
        r.read()
    finally:
        conn.close()


def test_a_scrape_changes_nothing_in_the_database(srv):
    sid = create(srv, {"kind": "pyspark", "heartbeatTimeoutInSecond": 60})
    post_code(srv, sid)
    before = srv.db.snapshot()
    scrape(srv)
    scrape(srv, "/metrics", "carol")
    assert srv.db.snapshot() == before


# ------------------------------------------------------------------ values


def test_sessions_and_statements_follow_the_api(srv):
    a, b = create(srv), create(srv)
    c = create(srv, {"kind": "pyspark"})
    s = scrape(srv)
    assert s.by("livy_sessions", "state", "kind") == {("not_started", "shared"): 2,
                                                      ("not_started", "pyspark"): 1}
    assert s.samples("livy_statements") == []

    for sid in (a, a, c):
        post_code(srv, sid)
    assert scrape(srv).by("livy_statements", "state") == {("waiting",): 3}

    r = call(srv, "POST", f"/open/sessions/{a}/statements/1/cancel")
    assert r.status_code == 200, r.text
    assert scrape(srv).by("livy_statements", "state") == {("waiting",): 2, ("cancelled",): 1}

    # Stopped: ended, and still listed (until the supervisor's list_ended): counted as dead.
    assert call(srv, "POST", f"/open/sessions/{b}/stop").status_code == 204
    s = scrape(srv)
    assert s.by("livy_sessions", "state", "kind") == {("not_started", "shared"): 1,
                                                      ("dead", "shared"): 1,
                                                      ("not_started", "pyspark"): 1}
    # Deleted: no longer listed, and its statements go with it.
    assert call(srv, "DELETE", f"/open/sessions/{a}").status_code == 200
    s = scrape(srv)
    assert s.by("livy_sessions", "state", "kind") == {("dead", "shared"): 1,
                                                      ("not_started", "pyspark"): 1}
    assert s.by("livy_statements", "state") == {("waiting",): 1}
    # A cancelled statement never started: it is no duration.
    assert s.value("livy_statement_duration_seconds_count") == 0


def test_a_deleted_session_still_shutting_down_is_counted(srv):
    """A session deleted while a supervisor holds it is shutting_down until its REPL is gone."""
    sup = add_supervisor(srv, "spark-1")
    sid = create(srv)
    srv.db.psql(f"UPDATE sessions SET supervisor_id = {sup}, state = 'idle' WHERE id = {sid}")
    assert call(srv, "DELETE", f"/open/sessions/{sid}").status_code == 200
    s = scrape(srv)
    assert s.by("livy_sessions", "state", "kind") == {("shutting_down", "shared"): 1}
    assert s.value("livy_supervisor_sessions", host="spark-1", id=sup) == 1


def test_statement_duration_histogram(srv):
    sid = create(srv, {"kind": "pyspark"})
    ids = [post_code(srv, sid, f"x = {i}") for i in range(7)]
    started = 1_700_000_000_000  # epoch ms, as the supervisor writes them
    durations_ms = [5, 10, 200, 2000, 400_000]  # 10 ms sits exactly on the first bound
    for i, ms in zip(ids, durations_ms):
        srv.db.psql(f"UPDATE statements SET state = 'available', started = {started}, "
                    f"completed = {started + ms} WHERE session_id = {sid} AND id = {i}")
    # running (started, not completed) and waiting statements are no duration
    srv.db.psql(f"UPDATE statements SET state = 'running', started = {started} "
                f"WHERE session_id = {sid} AND id = {ids[5]}")
    s = scrape(srv)
    assert s.by("livy_statement_duration_seconds_bucket", "le") == {
        ("0.01",): 2, ("0.05",): 2, ("0.1",): 2, ("0.5",): 3, ("1",): 3, ("5",): 4, ("10",): 4,
        ("60",): 4, ("300",): 4, ("+Inf",): 5}
    assert s.value("livy_statement_duration_seconds_count") == 5
    assert math.isclose(s.value("livy_statement_duration_seconds_sum"), 402.215, rel_tol=1e-12)
    assert s.by("livy_statements", "state") == {("available",): 5, ("running",): 1, ("waiting",): 1}
    # Buckets are cumulative, in order, ending with +Inf == count (what Prometheus requires).
    buckets = [v for _, v in sorted(((float(k[0]), v) for k, v in
                                     s.by("livy_statement_duration_seconds_bucket", "le").items()))]
    assert buckets == sorted(buckets) and buckets[-1] == 5


def test_supervisors(srv):
    busy = add_supervisor(srv, "spark-1", capacity=20, age_s=30)
    idle = add_supervisor(srv, "spark-2", capacity=8)
    add_supervisor(srv, "spark-gone", stopped=True)
    live, ended, _not_started = create(srv), create(srv), create(srv)
    srv.db.psql(f"UPDATE sessions SET supervisor_id = {busy}, state = 'idle' WHERE id = {live}; "
                f"UPDATE sessions SET supervisor_id = {busy}, state = 'dead', ended_at = now() "
                f"WHERE id = {ended}")
    s = scrape(srv)
    assert s.value("livy_supervisors") == 2
    assert s.by("livy_supervisor_capacity", "host", "id") == {("spark-1", busy): 20,
                                                              ("spark-2", idle): 8}
    assert s.by("livy_supervisor_sessions", "host", "id") == {("spark-1", busy): 1,
                                                              ("spark-2", idle): 0}
    ages = s.by("livy_supervisor_heartbeat_age_seconds", "host", "id")
    assert set(ages) == {("spark-1", busy), ("spark-2", idle)}
    assert 29 <= ages[("spark-1", busy)] < 300, ages
    assert 0 <= ages[("spark-2", idle)] < 30, ages
    assert s.by("livy_sessions", "state", "kind") == {("idle", "shared"): 1, ("dead", "shared"): 1,
                                                      ("not_started", "shared"): 1}


def test_label_values_are_escaped(srv):
    """Backslash, double quote and newline in label values (a supervisor's host, a kind that a
    row holds) reach Prometheus intact and cannot forge a sample."""
    host = 'evil"} 666\nlivy_forged{a="b"} 1\\'
    sup = add_supervisor(srv, host, capacity=3)
    kind = 'we"ird\\kind\nx'
    srv.db.psql("INSERT INTO sessions (kind, state) VALUES "
                "(E'we\"ird\\\\kind\\nx', 'idle')")
    r = call(srv, "GET", "/open/metrics")
    s = Scrape(r)
    assert s.by("livy_supervisor_capacity", "host", "id") == {(host, sup): 3}
    assert s.by("livy_sessions", "state", "kind") == {("idle", kind): 1}
    assert "livy_forged" not in s.families and not s.samples("livy_forged")
    assert not re.search(r"^livy_forged", r.text, re.M)
    assert 'host="evil\\"} 666\\nlivy_forged{a=\\"b\\"} 1\\\\"' in r.text
    assert 'kind="we\\"ird\\\\kind\\nx"' in r.text


def test_every_node_reports_the_same_values(srv, livy_server):
    """The values come from PostgreSQL, not from the process: a second server on the same
    database reports exactly what the first does."""
    create(srv)
    create(srv, {"kind": "sql"})
    other = livy_server(mpm=srv.mpm, extra_conf="<Location />\n    LivyMetrics On\n</Location>\n")
    first, second = scrape(srv), Scrape(other.get("/metrics"))
    for name in ("livy_sessions", "livy_statements", "livy_supervisors", "livy_batches",
                 "livy_statement_duration_seconds_count", "livy_session_start_duration_seconds_count",
                 "livy_info"):
        assert sorted(map(str, first.samples(name))) == sorted(map(str, second.samples(name))), name


def test_batches_by_state_and_per_supervisor(srv, tmp_path):
    sup = add_supervisor(srv, "spark-b", capacity=4)
    ids = []
    for _ in range(4):
        r = call(srv, "POST", "/open/batches", json={"file": "hdfs:///jobs/pi.py"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    srv.db.psql(f"UPDATE batches SET supervisor_id = {sup}, state = 'running' WHERE id = {ids[0]}; "
                f"UPDATE batches SET supervisor_id = {sup}, state = 'success', ended_at = now() "
                f"WHERE id = {ids[1]}")
    assert call(srv, "DELETE", f"/open/batches/{ids[2]}").status_code == 200  # unclaimed: killed, gone
    s = scrape(srv)
    assert s.by("livy_batches", "state") == {("starting",): 1, ("running",): 1, ("success",): 1}
    assert s.value("livy_supervisor_batches", host="spark-b", id=sup) == 1
    assert s.value("livy_supervisor_sessions", host="spark-b", id=sup) == 0


def test_session_start_duration_histogram(srv):
    """From create to the first idle (ready_at, which the supervisor sets); sessions that never
    got there are no duration."""
    ids = [create(srv) for _ in range(4)]
    for sid, seconds in zip(ids, (0.5, 3, 45)):
        srv.db.psql(f"UPDATE sessions SET state = 'idle', "
                    f"ready_at = created_at + interval '{seconds} seconds' WHERE id = {sid}")
    s = scrape(srv)
    assert s.by("livy_session_start_duration_seconds_bucket", "le") == {
        ("1",): 1, ("2",): 1, ("5",): 2, ("10",): 2, ("20",): 2, ("30",): 2, ("60",): 3,
        ("120",): 3, ("300",): 3, ("+Inf",): 3}
    assert s.value("livy_session_start_duration_seconds_count") == 3
    assert math.isclose(s.value("livy_session_start_duration_seconds_sum"), 48.5, rel_tol=1e-9)


def test_requests_by_route_and_status_with_durations(srv):
    """This httpd's own counters (shared by its processes): what it answered on mod_livy's
    locations, by route family and status, and how long that took."""
    before = scrape(srv)
    for _ in range(5):
        assert call(srv, "GET", "/open/version").status_code == 200
    for _ in range(3):
        assert call(srv, "GET", "/open/no-such-thing").status_code == 404
    assert call(srv, "GET", "/open/sessions/999999").status_code == 404
    assert call(srv, "POST", "/open/sessions", data=b"{", headers={
        "Content-Type": "application/json"}).status_code == 400
    after = scrape(srv)

    def moved(name, **labels):
        return (after.value(name, **labels) or 0) - (before.value(name, **labels) or 0)

    assert moved("livy_http_requests_total", route="version", code="200") == 5
    assert moved("livy_http_requests_total", route="other", code="404") == 3
    assert moved("livy_http_requests_total", route="session", code="404") == 1
    assert moved("livy_http_requests_total", route="sessions", code="400") == 1
    # the first scrape itself was counted once it was done
    assert moved("livy_http_requests_total", route="metrics", code="200") == 1
    assert moved("livy_http_request_duration_seconds_count", route="version") == 5
    assert after.value("livy_http_request_duration_seconds_bucket", route="version",
                       le="+Inf") == after.value("livy_http_request_duration_seconds_count",
                                                 route="version")
    assert 0 < after.value("livy_http_request_duration_seconds_sum", route="version") < 60
    buckets = sorted(((float(le), v) for (route, le), v in
                      after.by("livy_http_request_duration_seconds_bucket", "route", "le").items()
                      if route == "version"))
    values = [v for _, v in buckets]
    assert values == sorted(values)
    # The pools: the scrape holds a connection while it is made; connections were opened.
    assert after.value("livy_db_pool_connections", state="in_use") >= 1
    assert after.value("livy_db_pool_connections", state="idle") >= 0
    assert after.value("livy_db_pool_connects_total") >= 1
    assert after.value("livy_db_pool_timeouts_total") == 0
    assert after.value("livy_db_pool_connect_failures_total") == 0


# ------------------------------------------------------------------ access


def test_anonymous_is_401_from_httpd(srv):
    r = call(srv, "GET", "/metrics")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="livy"'


@pytest.mark.parametrize("user", ["carol", "erin", "frank"])
def test_superusers_view_and_modify_users_may_read(srv, user):
    create(srv)
    s = scrape(srv, "/metrics", user)
    assert s.value("livy_sessions", state="not_started", kind="shared") == 1


@pytest.mark.parametrize("user,words", [("alice", ("alice", "metrics")),
                                        ("dave", ("dave", "not allowed"))])
def test_other_users_are_403(srv, user, words):
    """alice may use the server but sees only her own sessions: the server-wide counts are not
    hers to read. dave is not admitted at all."""
    msg = json_error(call(srv, "GET", "/metrics", user), 403)
    for w in words:
        assert w in msg, msg
    # the 405 comes first, as for every route
    assert call(srv, "POST", "/metrics", user).status_code == 405
