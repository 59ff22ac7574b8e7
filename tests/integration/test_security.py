"""Security (issue 5, LIVY-API.md "Security"): httpd authenticates (mod_auth_basic with an htpasswd
file), mod_livy applies Livy's rules to r->user: admission, view and modify access, impersonation
through the body's proxyUser and through doAs, CSRF protection, per-user and starting-session
limits, owners, several <Location> mounts with different policies on one server, and no request
body in the error log.

Users: alice and bob (allowed), carol (superuser), erin (LivyViewUsers), frank (LivyModifyUsers),
dave (authenticates, but is not allowed in).

One httpd per MPM serves every test (each test empties the database first); its mounts:
  /         Basic auth, access control, impersonation On     (the main policy)
  /secure   the same policy under another mount point
  /csrf     the same, plus LivyCsrfProtection On
  /noimp    the same, but LivyImpersonation Off
  /limits   the same, plus LivyMaxSessionsPerUser 2
  /burst    the same, plus LivyMaxStartingSessions 3
  /open     no authentication, no access control, impersonation On (anonymous)
"""

from __future__ import annotations


import pytest
import requests

import livy_harness as h

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
SECRET = "pw-Zq8#hunter2-DO-NOT-LOG"


password = h.password


# ------------------------------------------------------------------ the server


@pytest.fixture(scope="module")
def htpasswd(work_dir):
    return h.write_htpasswd(work_dir / "security-htpasswd", USERS)


shipped_error_documents = h.shipped_error_documents


def security_conf(htpasswd) -> str:
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
        + mount("/secure", "    LivyAccessControl On\n    LivyImpersonation On")
        + mount("/csrf", "    LivyCsrfProtection On")
        + mount("/noimp", "    LivyImpersonation Off")
        + mount("/limits", "    LivyMaxSessionsPerUser 2")
        + mount("/burst", "    LivyMaxStartingSessions 3")
        + mount("/open", "    AuthType None\n    Require all granted\n    LivyAccessControl Off")
    )


@pytest.fixture(scope="module", params=h.selected_mpms())
def sec_server(request, work_dir, pg, htpasswd):
    yield from h.module_server(work_dir, pg, f"security-{request.param}", allow=h.AUTH_FAILURE_LINES,
                               mpm=request.param, extra_conf=security_conf(htpasswd))


@pytest.fixture
def srv(sec_server, clean_db):
    """The module's server on an emptied database; the test fails on new unexpected error-log lines."""
    yield from h.error_log_checked(sec_server)


# ------------------------------------------------------------------ helpers


call = h.request_as  # call(srv, user, method, path, **requests_kw): one request as user


def ok(r, status=200):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    return r.json()


def refused(r, status=403, *words):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), (r.headers, r.text[:300])
    body = r.json()
    assert list(body) == ["msg"] and isinstance(body["msg"], str) and body["msg"], body
    for w in words:
        assert w in body["msg"], (w, body["msg"])
    return body["msg"]


def create(srv, user, body=None, mount="", query=""):
    r = call(srv, user, "POST", f"{mount}/sessions{query}", json={} if body is None else body)
    s = ok(r, 201)
    assert r.headers["Location"] == f"{mount}/sessions/{s['id']}"
    return s


def post_code(srv, user, sid, code="1 + 1", mount=""):
    r = call(srv, user, "POST", f"{mount}/sessions/{sid}/statements", json={"code": code, "kind": "pyspark"})
    st = ok(r, 201)
    assert r.headers["Location"] == f"{mount}/sessions/{sid}/statements/{st['id']}"
    return st


def alices_session(srv):
    """alice's pyspark session with two statements and three log lines."""
    s = create(srv, "alice", {"kind": "pyspark", "name": "alices"})
    for code in ("secret_df = 1", "secret_df + 1"):
        post_code(srv, "alice", s["id"], code)
    srv.db.psql(f"INSERT INTO session_log (session_id, seq, line) VALUES ({s['id']}, 0, 'l0'), "
                f"({s['id']}, 1, 'l1'), ({s['id']}, 2, 'l2'); "
                f"UPDATE sessions SET next_log_seq = 3 WHERE id = {s['id']}")
    return s


VIEW_REQUESTS = [
    ("GET", "/sessions/{id}/log", None),
    ("GET", "/sessions/{id}/logs", None),
    ("GET", "/sessions/{id}/statements", None),
    ("GET", "/sessions/{id}/statements/0", None),
    ("GET", "/sessions/alices/log", None),
]
MODIFY_REQUESTS = [
    ("POST", "/sessions/{id}/statements", {"code": "steal()", "kind": "pyspark"}),
    ("POST", "/sessions/{id}/statements/0/cancel", None),
    ("POST", "/sessions/{id}/statements/1/cancel", {}),
    ("POST", "/sessions/{id}/completion", {"code": "sec", "kind": "pyspark", "cursor": 3}),
    ("POST", "/sessions/{id}/connect", None),
    ("POST", "/sessions/{id}/stop", None),
    ("DELETE", "/sessions/{id}", None),
    ("DELETE", "/sessions/alices", None),
]


def assert_can(srv, user, s, requests_):
    for method, path, body in requests_:
        r = call(srv, user, method, path.format(id=s["id"]), json=body)
        assert r.status_code in (200, 201), (user, method, path, r.status_code, r.text)


# ------------------------------------------------------------------ authentication and admission


def test_no_credentials_is_401_from_httpd(srv):
    before = srv.db.snapshot()
    for method, path in (("GET", "/sessions"), ("GET", "/version"), ("POST", "/sessions"),
                         ("GET", "/secure/sessions"), ("DELETE", "/sessions/0")):
        r = call(srv, None, method, path, json={} if method == "POST" else None)
        refused(r, 401)
        assert r.headers["WWW-Authenticate"] == 'Basic realm="livy"'
    # A wrong password and an unknown user are the same 401.
    refused(requests.get(srv.url + "/sessions", auth=("alice", "wrong"), timeout=30), 401)
    refused(requests.get(srv.url + "/sessions", auth=("mallory", "x"), timeout=30), 401)
    assert srv.db.snapshot() == before


def test_a_user_outside_the_allowed_list_is_403(srv):
    s = alices_session(srv)
    before = srv.db.snapshot()
    for method, path, body in [("GET", "/version", None), ("GET", "/sessions", None),
                               ("POST", "/sessions", {}), ("GET", f"/sessions/{s['id']}", None),
                               ("GET", f"/sessions/{s['id']}/state", None),
                               ("POST", f"/sessions/{s['id']}/statements", {"code": "1", "kind": "sql"}),
                               ("DELETE", f"/sessions/{s['id']}", None)]:
        refused(call(srv, "dave", method, path, json=body), 403, "dave")
    assert srv.db.snapshot() == before


@pytest.mark.parametrize("user", ["alice", "bob", "carol", "erin", "frank"])
def test_admitted_users(srv, user):
    # allowed ∪ view ∪ modify ∪ superusers
    assert ok(call(srv, user, "GET", "/version"))["version"] == "0.9.0"
    s = create(srv, user)
    assert s["owner"] == user


def test_owner_is_the_authenticated_user(srv):
    a = create(srv, "alice", {"kind": "sql"})
    b = create(srv, "bob", {"kind": "sql"})
    assert (a["owner"], b["owner"]) == ("alice", "bob")
    assert srv.db.psql("SELECT id, owner FROM sessions ORDER BY id") == [(str(a["id"]), "alice"), (str(b["id"]), "bob")]
    listed = {s["id"]: s["owner"] for s in ok(call(srv, "carol", "GET", "/sessions"))["sessions"]}
    assert listed == {a["id"]: "alice", b["id"]: "bob"}
    # Without authentication there is no owner.
    assert create(srv, None, mount="/open")["owner"] is None


# ------------------------------------------------------------------ view and modify


def test_another_user_cannot_view_or_modify_a_session(srv):
    s = alices_session(srv)
    before = srv.db.snapshot()
    for method, path, body in VIEW_REQUESTS + MODIFY_REQUESTS:
        refused(call(srv, "bob", method, path.format(id=s["id"]), json=body), 403, "bob")
    assert srv.db.snapshot() == before, "a refused request changed the database"
    # Nothing was cancelled, stopped or deleted.
    st = ok(call(srv, "alice", "GET", f"/sessions/{s['id']}/statements"))
    assert [x["state"] for x in st["statements"]] == ["waiting", "waiting"] and st["total_statements"] == 2
    assert ok(call(srv, "alice", "GET", f"/sessions/{s['id']}/state"))["state"] == "not_started"


def test_session_and_state_are_never_refused_but_hide_the_log(srv):
    s = alices_session(srv)
    mine = create(srv, "bob", {"kind": "sql"})
    srv.db.psql(f"INSERT INTO session_log (session_id, seq, line) VALUES ({mine['id']}, 0, 'bob-line')")
    got = ok(call(srv, "bob", "GET", f"/sessions/{s['id']}"))
    assert got["id"] == s["id"] and got["owner"] == "alice" and got["log"] == []
    assert ok(call(srv, "bob", "GET", "/sessions/alices"))["log"] == []
    assert ok(call(srv, "bob", "GET", f"/sessions/{s['id']}/state")) == {"id": s["id"], "state": "not_started"}
    # The owner sees the log.
    assert ok(call(srv, "alice", "GET", f"/sessions/{s['id']}"))["log"] == ["l0", "l1", "l2"]
    # The listing: bob sees alice's session with log [], his own with its log.
    listed = {x["id"]: x["log"] for x in ok(call(srv, "bob", "GET", "/sessions"))["sessions"]}
    assert listed == {s["id"]: [], mine["id"]: ["bob-line"]}
    listed = {x["id"]: x["log"] for x in ok(call(srv, "alice", "GET", "/sessions"))["sessions"]}
    assert listed == {s["id"]: ["l0", "l1", "l2"], mine["id"]: []}
    # A superuser sees both.
    listed = {x["id"]: x["log"] for x in ok(call(srv, "carol", "GET", "/sessions"))["sessions"]}
    assert listed == {s["id"]: ["l0", "l1", "l2"], mine["id"]: ["bob-line"]}


def test_the_listing_shows_each_user_the_sessions_a_get_shows_them(srv):
    s = alices_session(srv)
    bobs = create(srv, "bob", {"kind": "sql"})
    proxied = create(srv, "carol", {"kind": "sql", "proxyUser": "bob"})
    for sid in (bobs["id"], proxied["id"]):
        srv.db.psql(f"INSERT INTO session_log (session_id, seq, line) SELECT {sid}, g, 'x' || g"
                    " FROM generate_series(0, 11) g")
    ids = [s["id"], bobs["id"], proxied["id"]]
    seen = {}
    for user in ("alice", "bob", "carol", "erin", "frank"):
        single = [call(srv, user, "GET", f"/sessions/{sid}").content for sid in ids]
        r = call(srv, user, "GET", "/sessions")
        ok(r)
        assert r.content == b'{"from":0,"total":3,"sessions":[' + b",".join(single) + b"]}", user
        seen[user] = [bool(x["log"]) for x in r.json()["sessions"]]
        page = call(srv, user, "GET", "/sessions?from=1&size=1")
        assert page.content == b'{"from":1,"total":3,"sessions":[' + single[1] + b"]}", user
    # alice: her own; bob: his own and the one he is the proxy user of; the others: all.
    assert seen == {"alice": [True, False, False], "bob": [False, True, True],
                    "carol": [True, True, True], "erin": [True, True, True],
                    "frank": [True, True, True]}
    refused(call(srv, "dave", "GET", "/sessions"), 403, "dave")


def test_the_owner_can_do_everything(srv):
    s = alices_session(srv)
    assert ok(call(srv, "alice", "GET", f"/sessions/{s['id']}/log"))["log"] == ["l0", "l1", "l2"]
    assert_can(srv, "alice", s, VIEW_REQUESTS + MODIFY_REQUESTS[:5])
    assert call(srv, "alice", "POST", f"/sessions/{s['id']}/stop").status_code == 204
    assert ok(call(srv, "alice", "DELETE", f"/sessions/{s['id']}")) == {"msg": "deleted"}


def test_a_superuser_can_do_everything(srv):
    s = alices_session(srv)
    assert ok(call(srv, "carol", "GET", f"/sessions/{s['id']}/log"))["log"] == ["l0", "l1", "l2"]
    assert_can(srv, "carol", s, VIEW_REQUESTS + MODIFY_REQUESTS[:5])
    st = ok(call(srv, "carol", "GET", f"/sessions/{s['id']}/statements/0"))
    assert st["state"] == "cancelled"
    assert call(srv, "carol", "POST", f"/sessions/{s['id']}/stop").status_code == 204
    assert ok(call(srv, "carol", "DELETE", f"/sessions/{s['id']}")) == {"msg": "deleted"}
    assert srv.db.psql(f"SELECT deleted FROM sessions WHERE id = {s['id']}") == [("t",)]


def test_the_proxy_user_can_act_on_the_session(srv):
    # carol (a superuser) starts a session for bob; bob may then use it; alice may not.
    s = create(srv, "carol", {"kind": "pyspark", "proxyUser": "bob"})
    assert (s["owner"], s["proxyUser"]) == ("carol", "bob")
    post_code(srv, "carol", s["id"])
    srv.db.psql(f"INSERT INTO session_log (session_id, seq, line) VALUES ({s['id']}, 0, 'for bob')")
    assert ok(call(srv, "bob", "GET", f"/sessions/{s['id']}/log"))["log"] == ["for bob"]
    assert ok(call(srv, "bob", "GET", f"/sessions/{s['id']}"))["log"] == ["for bob"]
    st = post_code(srv, "bob", s["id"], "bobs_code()")
    assert st["id"] == 1
    assert ok(call(srv, "bob", "POST", f"/sessions/{s['id']}/statements/0/cancel")) == {"msg": "canceled"}
    assert ok(call(srv, "bob", "POST", f"/sessions/{s['id']}/connect"))["id"] == s["id"]
    before = srv.db.snapshot()
    refused(call(srv, "alice", "GET", f"/sessions/{s['id']}/log"), 403, "alice")
    refused(call(srv, "alice", "POST", f"/sessions/{s['id']}/statements", json={"code": "x", "kind": "sql"}), 403)
    refused(call(srv, "alice", "DELETE", f"/sessions/{s['id']}"), 403)
    assert srv.db.snapshot() == before
    assert ok(call(srv, "bob", "DELETE", f"/sessions/{s['id']}")) == {"msg": "deleted"}


def test_view_users_may_view_but_not_modify(srv):
    s = alices_session(srv)
    assert ok(call(srv, "erin", "GET", f"/sessions/{s['id']}/log"))["log"] == ["l0", "l1", "l2"]
    assert ok(call(srv, "erin", "GET", f"/sessions/{s['id']}/statements"))["total_statements"] == 2
    assert ok(call(srv, "erin", "GET", f"/sessions/{s['id']}/statements/1"))["code"] == "secret_df + 1"
    assert ok(call(srv, "erin", "GET", f"/sessions/{s['id']}"))["log"] == ["l0", "l1", "l2"]
    assert {x["id"]: x["log"] for x in ok(call(srv, "erin", "GET", "/sessions"))["sessions"]} == \
        {s["id"]: ["l0", "l1", "l2"]}
    before = srv.db.snapshot()
    for method, path, body in MODIFY_REQUESTS:
        refused(call(srv, "erin", method, path.format(id=s["id"]), json=body), 403, "erin")
    assert srv.db.snapshot() == before


def test_modify_users_may_view_and_modify(srv):
    s = alices_session(srv)
    assert ok(call(srv, "frank", "GET", f"/sessions/{s['id']}/log"))["log"] == ["l0", "l1", "l2"]
    assert_can(srv, "frank", s, VIEW_REQUESTS + MODIFY_REQUESTS[:5])
    assert srv.db.psql(f"SELECT count(*) FROM statements WHERE session_id = {s['id']}") == [("3",)]
    assert call(srv, "frank", "POST", f"/sessions/{s['id']}/stop").status_code == 204
    assert ok(call(srv, "frank", "DELETE", f"/sessions/{s['id']}")) == {"msg": "deleted"}


# ------------------------------------------------------------------ CSRF


@pytest.mark.parametrize("header_value", ["x", "sparkmagic", "1"])
def test_csrf_is_enforced_when_on(srv, header_value):
    hdr = {"X-Requested-By": header_value}
    before = srv.db.snapshot()
    msg = refused(call(srv, "alice", "POST", "/csrf/sessions", json={"kind": "sql"}), 400)
    assert "X-Requested-By" in msg
    assert srv.db.snapshot() == before
    r = call(srv, "alice", "POST", "/csrf/sessions", json={"kind": "sql"}, headers=hdr)
    s = ok(r, 201)
    assert r.headers["Location"] == f"/csrf/sessions/{s['id']}"
    # GET and HEAD need no header.
    assert ok(call(srv, "alice", "GET", f"/csrf/sessions/{s['id']}"))["id"] == s["id"]
    assert call(srv, "alice", "HEAD", f"/csrf/sessions/{s['id']}").status_code == 200
    assert ok(call(srv, "alice", "GET", "/csrf/sessions"))["total"] == 1
    # Every other method does.
    before = srv.db.snapshot()
    for method, path, body in (("POST", f"/csrf/sessions/{s['id']}/statements", {"code": "SELECT 1"}),
                               ("POST", f"/csrf/sessions/{s['id']}/stop", None),
                               ("POST", f"/csrf/sessions/{s['id']}/connect", None),
                               ("POST", f"/csrf/sessions/{s['id']}/completion",
                                {"code": "x", "kind": "sql", "cursor": 1}),
                               ("DELETE", f"/csrf/sessions/{s['id']}", None)):
        assert "X-Requested-By" in refused(call(srv, "alice", method, path, json=body), 400)
    assert srv.db.snapshot() == before
    st = ok(call(srv, "alice", "POST", f"/csrf/sessions/{s['id']}/statements", json={"code": "SELECT 1"},
                 headers=hdr), 201)
    assert ok(call(srv, "alice", "POST", f"/csrf/sessions/{s['id']}/statements/{st['id']}/cancel",
                   headers=hdr)) == {"msg": "canceled"}
    assert ok(call(srv, "alice", "DELETE", f"/csrf/sessions/{s['id']}", headers=hdr)) == {"msg": "deleted"}


def test_csrf_is_not_enforced_when_off(srv):
    # The default (Off) on the other mounts: sparkmagic and Airflow send no header.
    s = create(srv, "alice", {"kind": "sql"})
    post_code(srv, "alice", s["id"])
    assert call(srv, "alice", "POST", f"/sessions/{s['id']}/stop").status_code == 204
    assert ok(call(srv, "alice", "DELETE", f"/sessions/{s['id']}")) == {"msg": "deleted"}
    assert ok(call(srv, None, "POST", "/open/sessions", json={}), 201)


# ------------------------------------------------------------------ impersonation


def test_impersonation_of_oneself_is_allowed(srv):
    assert create(srv, "alice", {"proxyUser": "alice"})["proxyUser"] == "alice"
    assert create(srv, "alice", query="?doAs=alice")["proxyUser"] == "alice"


def test_impersonation_without_a_proxy_user_is_the_owner(srv):
    s = create(srv, "bob")
    assert (s["owner"], s["proxyUser"]) == ("bob", "bob")
    assert srv.db.psql(f"SELECT owner, proxy_user FROM sessions WHERE id = {s['id']}") == [("bob", "bob")]


@pytest.mark.parametrize("via", ["body", "doAs"])
def test_impersonating_someone_else_is_403_naming_both(srv, via):
    before = srv.db.snapshot()
    if via == "body":
        r = call(srv, "alice", "POST", "/sessions", json={"proxyUser": "bob"})
    else:
        r = call(srv, "alice", "POST", "/sessions?doAs=bob", json={})
    msg = refused(r, 403, "alice", "bob")
    assert srv.db.snapshot() == before
    # erin and frank (view/modify users) are no superusers either.
    for user in ("erin", "frank"):
        refused(call(srv, user, "POST", "/sessions?doAs=carol", json={}), 403, user, "carol")
    assert srv.db.snapshot() == before
    assert msg


@pytest.mark.parametrize("via", ["body", "doAs"])
def test_a_superuser_may_impersonate_anyone(srv, via):
    for target in ("bob", "dave", "someone-else"):
        if via == "body":
            s = create(srv, "carol", {"proxyUser": target})
        else:
            s = create(srv, "carol", query=f"?doAs={target}")
        assert (s["owner"], s["proxyUser"]) == ("carol", target)
        assert srv.db.psql(f"SELECT owner, proxy_user FROM sessions WHERE id = {s['id']}") == [("carol", target)]


def test_doas_takes_precedence_over_the_body(srv):
    s = create(srv, "alice", {"proxyUser": "bob"}, query="?doAs=alice")
    assert s["proxyUser"] == "alice"
    refused(call(srv, "alice", "POST", "/sessions?doAs=bob", json={"proxyUser": "alice"}), 403, "alice", "bob")


@pytest.mark.parametrize("via", ["body", "doAs"])
def test_anonymous_requests_may_impersonate(srv, via):
    if via == "body":
        s = create(srv, None, {"proxyUser": "bob"}, mount="/open")
    else:
        s = create(srv, None, mount="/open", query="?doAs=bob")
    assert (s["owner"], s["proxyUser"]) == (None, "bob")
    # Anonymous without a proxy user: none.
    s = create(srv, None, mount="/open")
    assert (s["owner"], s["proxyUser"]) == (None, None)


@pytest.mark.parametrize("via", ["body", "doAs"])
def test_impersonation_off_ignores_the_proxy_user(srv, via):
    if via == "body":
        s = create(srv, "alice", {"proxyUser": "bob"}, mount="/noimp")
    else:
        s = create(srv, "alice", mount="/noimp", query="?doAs=bob")
    assert (s["owner"], s["proxyUser"]) == ("alice", None)
    assert create(srv, "alice", mount="/noimp")["proxyUser"] is None
    assert srv.db.psql(f"SELECT proxy_user FROM sessions WHERE id = {s['id']}") == [(None,)]


# ------------------------------------------------------------------ two mounts, two policies


def test_two_mounts_with_different_policies(srv):
    # /open: anonymous, no access control. /secure: Basic auth and access control.
    o = create(srv, None, {"kind": "sql", "name": "open-one"}, mount="/open")
    s = create(srv, "alice", {"kind": "sql", "name": "secure-one"}, mount="/secure")
    assert s["owner"] == "alice" and o["owner"] is None
    st = post_code(srv, "alice", s["id"], mount="/secure")
    assert ok(call(srv, None, "GET", f"/open/sessions/{o['id']}/state"))["state"] == "not_started"
    st_o = post_code(srv, None, o["id"], mount="/open")
    assert st_o["id"] == 0
    # The same database behind both.
    assert ok(call(srv, None, "GET", "/open/sessions"))["total"] == 2
    assert ok(call(srv, "bob", "GET", "/secure/sessions"))["total"] == 2
    assert ok(call(srv, "bob", "GET", "/sessions/open-one"))["id"] == o["id"]
    # /secure asks for credentials and applies the lists; /open does neither.
    refused(call(srv, None, "GET", "/secure/sessions"), 401)
    refused(call(srv, "dave", "GET", "/secure/sessions"), 403, "dave")
    refused(call(srv, "bob", "GET", f"/secure/sessions/{s['id']}/statements/{st['id']}"), 403, "bob")
    assert ok(call(srv, None, "GET", f"/open/sessions/{s['id']}/statements/{st['id']}"))["id"] == st["id"]
    assert ok(call(srv, "dave", "GET", "/open/sessions"))["total"] == 2
    # Each mount's Location headers carry its own path.
    r = call(srv, None, "POST", f"/open/sessions/{s['id']}/statements", json={"code": "SELECT 2"})
    assert r.headers["Location"] == f"/open/sessions/{s['id']}/statements/1"
    r = call(srv, "alice", "POST", f"/secure/sessions/{s['id']}/statements", json={"code": "SELECT 3"})
    assert r.headers["Location"] == f"/secure/sessions/{s['id']}/statements/2"
    # Routes resolve relative to the mount.
    assert ok(call(srv, "alice", "GET", "/secure/version"))["version"] == "0.9.0"
    refused(call(srv, "alice", "GET", "/secure/secure/sessions"), 404)


@pytest.mark.parametrize("directive", ["", "LivyCsrfProtection Off"], ids=["bare", "with-a-livy-directive"])
def test_a_mount_needs_no_livy_directive_of_its_own(livy_server, clean_db, mpm, directive):
    """The plainest mount an operator writes, <Location /livy> SetHandler livy </Location>, serves
    the API under /livy, with or without a Livy* directive in that section."""
    srv = livy_server(mpm=mpm, extra_conf=f"<Location /livy>\n    SetHandler livy\n    {directive}\n</Location>\n")
    assert ok(requests.get(srv.url + "/livy/version", timeout=30))["version"] == "0.9.0"
    r = requests.post(srv.url + "/livy/sessions", json={}, timeout=30)
    s = ok(r, 201)
    assert r.headers["Location"] == f"/livy/sessions/{s['id']}"
    assert ok(requests.get(srv.url + r.headers["Location"], timeout=30))["id"] == s["id"]


# ------------------------------------------------------------------ limits


def test_max_sessions_per_user_is_429(srv):
    a = [create(srv, "alice", mount="/limits") for _ in range(2)]
    before = srv.db.snapshot()
    msg = refused(call(srv, "alice", "POST", "/limits/sessions", json={}), 429, "alice")
    assert "2" in msg
    assert srv.db.snapshot() == before
    # Others have their own share.
    create(srv, "bob", mount="/limits")
    create(srv, "bob", mount="/limits")
    refused(call(srv, "bob", "POST", "/limits/sessions", json={}), 429, "bob")
    # Ending a session frees a place; stopped sessions do not count.
    assert call(srv, "alice", "POST", f"/limits/sessions/{a[0]['id']}/stop").status_code == 204
    c = create(srv, "alice", mount="/limits")
    refused(call(srv, "alice", "POST", "/limits/sessions", json={}), 429)
    assert ok(call(srv, "alice", "DELETE", f"/limits/sessions/{c['id']}")) == {"msg": "deleted"}
    create(srv, "alice", mount="/limits")
    # Other mounts have no limit.
    create(srv, "alice")


def test_max_starting_sessions_is_429(srv):
    made = [create(srv, u, mount="/burst") for u in ("alice", "bob", "carol")]
    before = srv.db.snapshot()
    for user in ("alice", "frank"):
        msg = refused(call(srv, user, "POST", "/burst/sessions", json={}), 429)
        assert "3" in msg and "starting" in msg.lower(), msg
    assert srv.db.snapshot() == before
    # Once one is up, there is room again.
    srv.db.psql(f"UPDATE sessions SET state = 'idle' WHERE id = {made[0]['id']}")
    create(srv, "alice", mount="/burst")
    refused(call(srv, "bob", "POST", "/burst/sessions", json={}), 429)


# ------------------------------------------------------------------ nothing secret in logs


def test_request_bodies_are_not_written_to_the_error_log(srv):
    s = create(srv, "alice", {"kind": "pyspark", "conf": {"spark.hadoop.fs.s3a.secret.key": SECRET}})
    post_code(srv, "alice", s["id"], f"password = '{SECRET}'")
    # The same secret in requests that fail in every way the server can report.
    call(srv, "alice", "POST", f"/sessions/{s['id']}/statements", data=f'{{"code": "{SECRET}"')
    call(srv, "alice", "POST", f"/sessions/{s['id']}/statements", json={"code": SECRET, SECRET: 1})
    call(srv, "alice", "POST", "/sessions", json={"conf": {"spark.master": SECRET}})
    call(srv, "alice", "POST", "/sessions", json={"name": SECRET, "kind": SECRET})
    call(srv, "bob", "POST", f"/sessions/{s['id']}/statements", json={"code": SECRET, "kind": "pyspark"})
    call(srv, "dave", "POST", "/sessions", json={"conf": {"k": SECRET}})
    call(srv, "alice", "POST", "/csrf/sessions", json={"conf": {"k": SECRET}})
    try:  # over LivyMaxBodySize: 413, and httpd may close before the whole body is sent
        call(srv, "alice", "POST", "/sessions", data=('{"code": "' + SECRET * 45000 + '"}').encode())
    except requests.ConnectionError:
        pass
    call(srv, "alice", "PUT", "/sessions", json={"code": SECRET})  # 405
    call(srv, None, "POST", "/sessions", json={"code": SECRET})  # 401
    call(srv, "alice", "POST", "/sessions/99999/statements", json={"code": SECRET})  # 404
    # A wrong password is logged by mod_auth_basic (the user name, never the password).
    requests.post(srv.url + "/sessions", json={"code": SECRET}, auth=("alice", SECRET), timeout=30)
    text = srv.error_log.read_text(errors="replace")
    assert "AH01617: user alice: authentication failure" in text, "the error log is not being written"
    assert SECRET not in text
    assert "hunter2" not in text
