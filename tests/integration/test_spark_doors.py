"""Spark's own doors (tenant isolation): a local session's driver listens on loopback only, its
RPC is authenticated with a per-session secret that never reaches a command line, and its web UI
is reachable only through httpd, at <mount>/sessions/{id}/ui/, under the session's view rule
(its kill links under the modify rule).

One server (event MPM, managed supervisor, a database of its own, Basic auth with
LivyAccessControl On) and one shared session, `main`, owned by alice, carry the Spark-heavy
checks; a second session without a UI (`noui`) starts alongside for the "no UI" answers.
Users: alice (the owner), bob (allowed in, no rights on alice's session), erin (LivyViewUsers),
frank (LivyModifyUsers).
"""

from __future__ import annotations

import base64
import http.client
import re
import subprocess
from pathlib import Path

import pytest
import requests

import livy_harness as h

from livy_client import ENDED_STATES, JAVA_FAST, Client, finish_server

USERS = ("alice", "bob", "erin", "frank")
# The owner tries to open the doors again; the server's settings win.
MAIN_CONF = {"spark.driver.extraJavaOptions": JAVA_FAST, "spark.sql.shuffle.partitions": "2",
             "spark.driver.host": "0.0.0.0", "spark.driver.bindAddress": "0.0.0.0",
             "spark.authenticate": "false", "spark.authenticate.secret": "chosen-by-the-user"}
NOUI_CONF = {"spark.driver.extraJavaOptions": JAVA_FAST, "spark.ui.enabled": "false"}
LOOPBACK = {"127.0.0.1", "::1"}


password = h.password


def doors_conf(htpasswd: Path) -> str:
    return h.basic_auth_conf(htpasswd, """
        LivyAccessControl On
        LivyAllowedUsers alice bob
        LivyViewUsers erin
        LivyModifyUsers frank
        """, error_documents=True) + (
        "<Location /csrf>\n"
        "    ErrorDocument 401 /csrf/error\n"
        "    LivyCsrfProtection On\n"
        "</Location>\n")


@pytest.fixture(scope="module")
def doors(work_dir, pg, spark_env):
    htpasswd = h.write_htpasswd(work_dir / "doors-htpasswd", USERS)
    pg.create_database("doors")
    factory = h.ServerFactory(work_dir, pg, "doors")
    try:
        server = factory(mpm="event", supervisor="managed", dbname="doors", extra_conf=doors_conf(htpasswd),
                         supervisor_conf={"check_interval": "200ms", "stop_grace": "4s"})
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    server.allow_errors(r"AH01617: user \w+: authentication failure")
    server.http.auth = ("alice", password("alice"))  # the Client speaks as the owner
    server.htpasswd = htpasswd
    yield Client(server, pg, "doors")
    finish_server(factory)


@pytest.fixture(scope="module")
def sessions(doors):
    main = doors.create(kind="shared", conf=MAIN_CONF)
    noui = doors.create(kind="pyspark", conf=NOUI_CONF)
    # Before a session is up, its UI is "not up yet" (asked at once: a cold start takes seconds).
    early = call(doors, "alice", "GET", f"/sessions/{main['id']}/ui/jobs/")
    doors.wait_session(main["id"], "idle")
    doors.wait_session(noui["id"], "idle")
    yield {"main": main["id"], "noui": noui["id"], "early": early}
    for sid in (main["id"], noui["id"]):
        doors.server.delete(f"/sessions/{sid}")


def call(doors: Client, user: str | None, method: str, path: str, **kw) -> requests.Response:
    auth = (user, password(user)) if user else None
    kw.setdefault("allow_redirects", False)
    return requests.request(method, doors.server.url + path, auth=auth, timeout=60, **kw)


def json_error(r: requests.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.headers, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert list(body) == ["msg"], body
    return body["msg"]


# ------------------------------------------------------------------ (a) loopback only


def test_driver_listens_on_loopback_only(doors, sessions):
    sid = sessions["main"]
    members = h.session_members(doors.repl_pid(sid))
    assert len(members) >= 2, members  # the REPL and its JVM at least
    socks = h.listening_sockets(members)
    ss = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    mine = [line for line in ss.splitlines() if any(f"pid={p}," in line for p in members)]
    print("ss -ltnp, the session's processes:\n" + "\n".join(mine))
    # The UI, the driver's RPC and the block manager, and py4j's gateway.
    assert len(socks) >= 3, (socks, mine)
    outside = [s for s in socks if s[1] not in LOOPBACK]
    assert not outside, f"listening beyond loopback: {outside}\n" + "\n".join(mine)
    ui_url = doors.db_value(f"SELECT spark_ui_url FROM sessions WHERE id = {sid}")
    m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/?", ui_url or "")
    assert m, ui_url
    assert int(m.group(1)) in {port for _, _, port in socks}


def test_user_conf_cannot_open_the_doors(doors, sessions):
    sid = sessions["main"]
    assert doors.text(sid, 'spark.conf.get("spark.driver.host")') == "'127.0.0.1'"
    assert doors.text(sid, 'spark.conf.get("spark.driver.bindAddress")') == "'127.0.0.1'"
    assert doors.text(sid, 'import os; os.environ.get("SPARK_LOCAL_IP")') == "'127.0.0.1'"
    assert doors.text(sid, 'spark.conf.get("spark.ui.killEnabled")') == "'false'"


# ------------------------------------------------------------------ (b) the RPC secret


def test_rpc_is_authenticated_with_a_secret_off_the_command_line(doors, sessions):
    sid = sessions["main"]
    assert doors.text(sid, 'spark.conf.get("spark.authenticate")') == "'true'"
    secret = doors.text(sid, 'print(sc.getConf().get("spark.authenticate.secret"))')
    assert re.fullmatch(r"[0-9a-f]{64}", secret), secret  # the REPL's, not the user's
    for pid in h.session_members(doors.repl_pid(sid)):
        for what in ("cmdline", "environ"):
            raw = Path(f"/proc/{pid}/{what}").read_bytes()
            assert secret.encode() not in raw, f"the secret is in /proc/{pid}/{what}"
            assert b"chosen-by-the-user" not in raw, f"the user's secret is in /proc/{pid}/{what}"
        if b"java" in Path(f"/proc/{pid}/cmdline").read_bytes():
            assert b"spark.authenticate.secret" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_jobs_run_with_authentication_on(doors, sessions):
    sid = sessions["main"]
    assert doors.text(sid, "spark.range(100).count()") == "100"
    # Python workers (a UDF-like map through the Python worker daemon)
    assert doors.text(sid, "sc.parallelize(range(10), 2).map(lambda x: x * x).sum()") == "285"
    out = doors.run(sid, "SELECT count(*) AS n FROM range(7)", kind="sql")["output"]
    assert out["status"] == "ok", out
    assert out["data"]["application/json"]["data"] == [[7]], out


# ------------------------------------------------------------------ (c) the UI through httpd


def test_spark_ui_url_is_the_proxy_path(doors, sessions):
    sid = sessions["main"]
    s = doors.session(sid)
    assert s["appInfo"]["sparkUiUrl"] == f"{doors.server.url}/sessions/{sid}/ui/", s["appInfo"]
    # A session without a UI has none.
    assert doors.session(sessions["noui"])["appInfo"]["sparkUiUrl"] is None


def test_owner_sees_the_job_list_with_links_under_the_proxy(doors, sessions):
    sid = sessions["main"]
    doors.text(sid, "spark.range(10).count()")  # at least one job to list
    r = call(doors, "alice", "GET", f"/sessions/{sid}/ui/jobs/")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("text/html"), r.headers
    assert "Spark Jobs" in r.text
    links = re.findall(r'href="([^"]+)"', r.text)
    prefix = f"/sessions/{sid}/ui/"
    internal = [link for link in links if link.startswith("/")]
    assert internal and all(link.startswith(prefix) for link in internal), internal
    job_links = [link for link in internal if "/jobs/job/?id=" in link]
    assert job_links, internal
    r = call(doors, "alice", "GET", job_links[0].replace("&amp;", "&"))
    assert r.status_code == 200 and "Details for Job" in r.text, (r.status_code, r.text[:300])
    # Spark's REST API answers through the same door.
    r = call(doors, "alice", "GET", f"/sessions/{sid}/ui/api/v1/applications")
    assert r.status_code == 200, r.text[:300]
    assert r.json()[0]["id"] == doors.session(sid)["appId"]


def test_redirects_point_at_the_proxy(doors, sessions):
    sid = sessions["main"]
    base = f"{doors.server.url}/sessions/{sid}/ui"
    for path in ("/", "/jobs"):
        r = call(doors, "alice", "GET", f"/sessions/{sid}/ui{path}")
        assert r.status_code in (301, 302, 303, 307, 308), (path, r.status_code, r.text[:200])
        assert r.headers["Location"] == f"{base}/jobs/", (path, r.headers["Location"])
    r = requests.get(f"{base}/", auth=("alice", password("alice")), timeout=60)
    assert r.status_code == 200 and "Spark Jobs" in r.text


def test_links_follow_a_mount_point(doors, sessions):
    sid = sessions["main"]
    r = call(doors, "alice", "GET", f"/csrf/sessions/{sid}/ui/jobs/")
    assert r.status_code == 200, r.text[:300]
    internal = [link for link in re.findall(r'href="([^"]+)"', r.text) if link.startswith("/")]
    assert internal and all(link.startswith(f"/csrf/sessions/{sid}/ui/") for link in internal), internal
    r = call(doors, "alice", "GET", f"/csrf/sessions/{sid}/ui/")
    assert r.headers["Location"] == f"{doors.server.url}/csrf/sessions/{sid}/ui/jobs/"


def test_ui_needs_view_access(doors, sessions):
    sid = sessions["main"]
    assert "may not view" in json_error(call(doors, "bob", "GET", f"/sessions/{sid}/ui/jobs/"), 403)
    assert "may not view" in json_error(call(doors, "bob", "GET", f"/sessions/{sid}/ui/api/v1/applications"), 403)
    assert call(doors, None, "GET", f"/sessions/{sid}/ui/jobs/").status_code == 401
    r = call(doors, "erin", "GET", f"/sessions/{sid}/ui/jobs/")
    assert r.status_code == 200 and "Spark Jobs" in r.text


def test_kill_links_need_modify_access(doors, sessions):
    sid = sessions["main"]
    for path in ("/jobs/job/kill/?id=0", "/stages/stage/kill/?id=0", "/jobs/job/KILL?id=0"):
        assert "may not modify" in json_error(call(doors, "erin", "GET", f"/sessions/{sid}/ui{path}"), 403)
        assert "may not modify" in json_error(call(doors, "erin", "POST", f"/sessions/{sid}/ui{path}"), 403)
    # Users who may modify the session are passed through to Spark (which, with
    # spark.ui.killEnabled false, kills nothing and redirects to the job list).
    for user in ("alice", "frank"):
        r = call(doors, user, "GET", f"/sessions/{sid}/ui/jobs/job/kill/?id=0")
        assert r.status_code in (200, 302), (user, r.status_code, r.text[:300])
        if r.status_code == 302:
            assert r.headers["Location"].startswith(f"{doors.server.url}/sessions/{sid}/ui/jobs/")
    # The session is unharmed.
    assert doors.text(sid, "1 + 1") == "2"


def test_ui_writes_follow_the_csrf_rule(doors, sessions):
    sid = sessions["main"]
    r = call(doors, "alice", "POST", f"/csrf/sessions/{sid}/ui/jobs/job/kill/?id=0")
    assert "X-Requested-By" in json_error(r, 400)
    r = call(doors, "alice", "POST", f"/csrf/sessions/{sid}/ui/jobs/job/kill/?id=0",
             headers={"X-Requested-By": "test"})
    assert r.status_code in (200, 302), (r.status_code, r.text[:300])


def test_without_mod_proxy_no_ui_url_and_501(doors, sessions, livy_server, pg):
    """A second httpd on the same database, without mod_proxy: it says so once at startup,
    shows no sparkUiUrl (never the driver's loopback address) and answers the UI route 501."""
    sid = sessions["main"]
    bare = livy_server(dbname="doors", extra_conf=doors_conf(doors.server.htpasswd), proxy=False)
    warned = [line for line in bare.error_log_lines() if "mod_proxy and mod_proxy_http are not" in line]
    assert len(warned) == 1, warned
    r = requests.get(f"{bare.url}/sessions/{sid}", auth=("alice", password("alice")), timeout=30)
    assert r.status_code == 200 and r.json()["appInfo"]["sparkUiUrl"] is None, r.text
    r = requests.get(f"{bare.url}/sessions/{sid}/ui/jobs/", auth=("alice", password("alice")), timeout=30)
    assert "mod_proxy" in json_error(r, 501)
    # the access rules still come first
    r = requests.get(f"{bare.url}/sessions/{sid}/ui/jobs/", auth=("bob", password("bob")), timeout=30)
    json_error(r, 403)


# ------------------------------------------------------------------ (d) bad input


def test_unknown_session_ui_is_404(doors, sessions):
    assert "not found" in json_error(call(doors, "alice", "GET", "/sessions/987654/ui/jobs/"), 404)
    assert "not found" in json_error(call(doors, "alice", "GET", "/sessions/no-such-name/ui/"), 404)


def test_ui_not_up_yet_is_409(doors, sessions):
    assert "not up yet" in json_error(sessions["early"], 409)


def test_session_without_ui_is_404(doors, sessions):
    sid = sessions["noui"]
    assert "no Spark UI" in json_error(call(doors, "alice", "GET", f"/sessions/{sid}/ui/jobs/"), 404)


def test_ended_session_ui_is_404(doors, sessions):
    sid = sessions["noui"]
    r = doors.server.post(f"/sessions/{sid}/stop")
    assert r.status_code == 204, r.text
    doors.wait_listed_state(sid, ENDED_STATES, timeout=60)
    assert "ended" in json_error(call(doors, "alice", "GET", f"/sessions/{sid}/ui/jobs/"), 404)
    assert doors.session(sid)["appInfo"]["sparkUiUrl"] is None


def test_wrong_method_is_405(doors, sessions):
    sid = sessions["main"]
    r = call(doors, "alice", "DELETE", f"/sessions/{sid}/ui/jobs/")
    json_error(r, 405)
    assert r.headers["Allow"] == "GET, HEAD, POST"


def raw_get(doors: Client, path: str) -> tuple[int, str, str]:
    """A GET with the path exactly as written (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", doors.server.port, timeout=60)
    token = base64.b64encode(f"alice:{password('alice')}".encode()).decode()
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.putheader("Authorization", f"Basic {token}")
    conn.endheaders()
    r = conn.getresponse()
    body = r.read().decode(errors="replace")
    ctype = r.getheader("Content-Type") or ""
    conn.close()
    return r.status, ctype, body


@pytest.mark.parametrize("tail", [
    "/../../version",
    "/%2e%2e/%2e%2e/version",
    "/jobs/%2e%2e/%2e%2e/%2e%2e/sessions",
    "/jobs/..%2f..%2f",
    "/jobs/%2F..%2F..%2F",
    "/jobs/..%5c..%5cx",
    "/static/%00",
    "/jobs/%0d%0aX-Injected:%201",
])
def test_path_tricks_do_not_leave_the_ui(doors, sessions, tail):
    sid = sessions["main"]
    status, ctype, body = raw_get(doors, f"/sessions/{sid}/ui{tail}")
    # Whatever httpd makes of it, the answer is not a Spark page: a JSON error of ours, the Livy
    # route that dot segments resolve to, or (encoded slashes and NUL) httpd's own 404, which it
    # sends before any module or ErrorDocument sees the request.
    httpds_own = "%2f" in tail.lower() or "%00" in tail
    assert status in (400, 403, 404), (tail, status, body[:200])
    assert "Spark Jobs" not in body and "X-Injected: 1" not in body, (tail, status, body[:300])
    assert ctype.startswith("application/json") or httpds_own, (tail, status, ctype, body[:200])
