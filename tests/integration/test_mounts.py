"""Mount points (issue 11): the Livy API is mounted where `SetHandler livy` is set, a <Location> or
a <LocationMatch>. Sections inside the mount that only add policy (authentication, Livy's security
directives) do not move it, so their routes keep answering; a <LocationMatch> mount serves what
its regex matched; bad input under every kind of mount gets the usual JSON 404 and 405.

Each test starts its own httpd (the harness's `<Location />` mount plus the test's sections) on
the shared, emptied database, under each MPM."""

from __future__ import annotations

import time

import pytest
import requests

import livy_harness as h

USERS = ("alice", "bob")


def is_json(r) -> bool:
    return r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"


def ok(r, status=200):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert is_json(r), r.headers
    return r.json()


def err(r, status):
    """The message of a JSON error {"msg": ...} with this status."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert is_json(r), (r.headers, r.text[:300])
    body = r.json()
    assert list(body) == ["msg"] and body["msg"], body
    return body["msg"]


@pytest.fixture(scope="module")
def htpasswd(work_dir):
    return h.write_htpasswd(work_dir / "mounts-htpasswd", USERS)


def as_user(user):
    return (user, h.password(user)) if user else None


def error_documents() -> str:
    """conf/livy.conf's ErrorDocument lines, at server level as it ships them."""
    return "\n".join(h.shipped_error_documents()) + "\n"


def test_policy_section_inside_the_root_mount_keeps_the_mount(livy_server, clean_db, mpm, htpasswd):
    # Basic auth and Livy's access control on <Location /sessions> only, inside the harness's
    # <Location /> mount: /sessions is still the sessions route of the root mount.
    policy = h.basic_auth_conf(htpasswd, "LivyAccessControl On\nLivyAllowedUsers alice")
    policy = policy.replace("<Location />", "<Location /sessions>")
    srv = livy_server(mpm=mpm, extra_conf=policy + error_documents())
    srv.allow_errors(r"AH01617|AH01618")

    assert "WWW-Authenticate" in requests.get(srv.url + "/sessions", timeout=10).headers
    err(requests.get(srv.url + "/sessions", timeout=10), 401)
    assert ok(requests.get(srv.url + "/sessions", auth=as_user("alice"), timeout=10)) == \
        {"from": 0, "total": 0, "sessions": []}
    assert "not allowed" in err(requests.get(srv.url + "/sessions", auth=as_user("bob"), timeout=10), 403)
    assert ok(requests.get(srv.url + "/version", timeout=10))["version"]

    # Routes below the policy section answer as the root mount's, Location headers included.
    r = requests.post(srv.url + "/sessions", json={"kind": "pyspark"}, auth=as_user("alice"), timeout=10)
    s = ok(r, 201)
    assert s["owner"] == "alice"
    assert r.headers["Location"] == f"/sessions/{s['id']}"
    assert ok(requests.get(srv.url + f"/sessions/{s['id']}/state", auth=as_user("alice"), timeout=10)) == \
        {"id": s["id"], "state": "not_started"}
    assert "not found" in err(requests.get(srv.url + "/sessions/999", auth=as_user("alice"), timeout=10), 404)
    # ... and bad input there still gets the JSON 404 and 405.
    err(requests.get(srv.url + "/sessions/1/nope", auth=as_user("alice"), timeout=10), 404)
    r = requests.put(srv.url + "/sessions", auth=as_user("alice"), timeout=10)
    err(r, 405)
    assert r.headers["Allow"]


def test_policy_section_inside_a_mount_at_a_path(livy_server, clean_db, mpm):
    conf = ("<Location /livy>\n    SetHandler livy\n</Location>\n"
            "<Location /livy/sessions>\n    LivyCsrfProtection On\n</Location>\n")
    srv = livy_server(mpm=mpm, extra_conf=conf)

    assert ok(srv.get("/livy/sessions")) == {"from": 0, "total": 0, "sessions": []}
    assert ok(srv.get("/livy/version"))["version"]
    # The policy applies below /livy/sessions, and the mount stays /livy.
    assert "X-Requested-By" in err(srv.post("/livy/sessions", json={"kind": "sql"}), 400)
    r = srv.post("/livy/sessions", json={"kind": "sql"}, headers={"X-Requested-By": "test"})
    s = ok(r, 201)
    assert r.headers["Location"] == f"/livy/sessions/{s['id']}"
    assert ok(srv.get(f"/livy/sessions/{s['id']}"))["id"] == s["id"]
    r = srv.post(f"/livy/sessions/{s['id']}/statements", json={"code": "1 + 1"},
                 headers={"X-Requested-By": "test"})
    assert r.headers["Location"] == f"/livy/sessions/{s['id']}/statements/{ok(r, 201)['id']}"
    # Bad input under the mount.
    assert "No such resource" in err(srv.get("/livy/sessions/1/nope"), 404)
    err(srv.get("/livy/nope"), 404)
    err(srv.get("/livy"), 404)
    err(srv.request("DELETE", "/livy/sessions"), 405)


def regex_server(livy_server, mpm, regex: str, policy: str = ""):
    """A server whose only mount is a <LocationMatch> (the harness's <Location /> is switched
    off), with policy after it; the readiness probe is ours."""
    conf = ("<Location />\n    SetHandler none\n</Location>\n"
            f'<LocationMatch "{regex}">\n    SetHandler livy\n</LocationMatch>\n' + policy)
    srv = livy_server(mpm=mpm, extra_conf=conf, start=False)
    srv.start(wait_ready=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if is_json(requests.get(srv.url + "/api/v1/livy/version", timeout=5)):
                return srv
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("the <LocationMatch> mount did not answer\n" + srv.log_tail())


def test_location_match_mount_serves_what_it_matched(livy_server, clean_db, mpm):
    srv = regex_server(livy_server, mpm, "^/api/v[0-9]+/livy")

    assert ok(srv.get("/api/v1/livy/sessions")) == {"from": 0, "total": 0, "sessions": []}
    assert ok(srv.get("/api/v1/livy/version"))["version"]
    assert ok(srv.get("/api/v22/livy/version"))["version"]
    r = srv.post("/api/v2/livy/sessions", json={"kind": "pyspark"})
    s = ok(r, 201)
    assert r.headers["Location"] == f"/api/v2/livy/sessions/{s['id']}"
    assert ok(srv.get(f"/api/v1/livy/sessions/{s['id']}"))["id"] == s["id"]

    # What the regex does not match is not the module's: httpd's own 404 page.
    for path in ("/api/vx/livy/sessions", "/sessions", "/version", "/api/livy/version"):
        r = srv.get(path)
        assert r.status_code == 404 and not is_json(r), (path, r.status_code, r.headers)

    # Bad input under the mount: JSON 404 and 405.
    assert "No such resource" in err(srv.get("/api/v1/livy/nope"), 404)
    err(srv.get("/api/v1/livy/sessions/abc/def"), 404)
    err(srv.get("/api/v1/livy"), 404)
    err(srv.get("/api/v1/livyx/sessions"), 404)
    r = srv.request("DELETE", "/api/v1/livy/sessions")
    err(r, 405)
    assert "POST" in r.headers["Allow"]
    err(srv.request("PUT", "/api/v1/livy/version"), 405)


def test_location_match_mount_with_a_policy_section_inside(livy_server, clean_db, mpm, htpasswd):
    policy = (h.basic_auth_conf(htpasswd)
              .replace("<Location />", '<LocationMatch "^/api/v[0-9]+/livy/sessions">')
              .replace("</Location>", "</LocationMatch>"))
    srv = regex_server(livy_server, mpm, "^/api/v[0-9]+/livy", policy)
    srv.allow_errors(r"AH01617|AH01618")

    assert requests.get(srv.url + "/api/v3/livy/sessions", timeout=10).status_code == 401
    assert ok(requests.get(srv.url + "/api/v3/livy/sessions", auth=as_user("bob"), timeout=10)) == \
        {"from": 0, "total": 0, "sessions": []}
    assert ok(srv.get("/api/v3/livy/version"))["version"]
    err(requests.get(srv.url + "/api/v3/livy/sessions/x/y", auth=as_user("bob"), timeout=10), 404)
