"""The OpenAPI document (docs/openapi.yaml, issue 14): the module serves it at /openapi.json as
built from the YAML, the routes it describes are the routes the server answers (and no others),
and schemathesis, run against a live server with every check, finds no 5xx, no response outside
the documented statuses, content types, headers and schemas, and no connection error.

No supervisor and no Spark: sessions stay `not_started` and statements `waiting`, which is all
the API itself answers (test_api_routes.py does the same)."""

from __future__ import annotations

import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
import yaml

import livy_harness as h

SPEC_PATH = h.ROOT / "docs" / "openapi.yaml"
METHODS = ["GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]

# Every route livy_route.c knows, as a path template; the spec must describe exactly these.
ENGINE_ROUTES = {
    "/version", "/openapi.json", "/metrics",
    "/sessions", "/sessions/{id}", "/sessions/{id}/state", "/sessions/{id}/log",
    "/sessions/{id}/logs", "/sessions/{id}/connect", "/sessions/{id}/stop",
    "/sessions/{id}/completion", "/sessions/{id}/statements", "/sessions/{id}/statements/{sid}",
    "/sessions/{id}/statements/{sid}/cancel", "/sessions/{id}/ui/{page}",
    "/batches", "/batches/{id}", "/batches/{id}/state", "/batches/{id}/log", "/batches/{id}/logs",
    "/ui", "/ui/", "/ui/{file}", "/ui/api/supervisors", "/ui/api/sessions",
}

# schemathesis's budget: generated cases per operation in its fuzzing phase (about 50 s at 100).
MAX_EXAMPLES = int(os.environ.get("LIVY_OPENAPI_MAX_EXAMPLES", "100"))


def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def deployment_conf() -> str:
    """The shipped ErrorDocument lines, at server level as conf/livy.conf has them: httpd's own
    errors (a 404 for an encoded slash, a 400 from the core) answer {"msg"} JSON too. And
    LivyMetrics On and LivyUI On, so that /metrics and /ui/ (in the spec) are served."""
    return ("\n".join(h.shipped_error_documents())
            + "\n<Location />\n    LivyMetrics On\n    LivyUI On\n</Location>\n")


@pytest.fixture(scope="module")
def oapi_server(work_dir, pg):
    yield from h.module_server(work_dir, pg, "openapi", mpm=h.selected_mpms()[0],
                               extra_conf=deployment_conf())


@pytest.fixture
def server(oapi_server, clean_db):
    yield from h.error_log_checked(oapi_server)


# ------------------------------------------------------------------ the document as served


def test_openapi_json_is_the_yaml(server):
    r = server.get("/openapi.json")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    assert r.json() == spec()
    assert re.fullmatch(r'"[0-9a-f]+"', r.headers["ETag"]), r.headers
    assert r.headers["Cache-Control"] == "max-age=3600"


def test_openapi_head_and_revalidation(server):
    got = server.get("/openapi.json")
    head = server.request("HEAD", "/openapi.json")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["ETag"] == got.headers["ETag"]
    assert int(head.headers["Content-Length"]) == len(got.content)
    same = server.get("/openapi.json", headers={"If-None-Match": got.headers["ETag"]})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["ETag"] == got.headers["ETag"]
    other = server.get("/openapi.json", headers={"If-None-Match": '"0000"'})
    assert other.status_code == 200 and other.json() == got.json()
    failed = server.get("/openapi.json", headers={"If-Match": '"0000"'})
    assert failed.status_code == 412 and list(failed.json()) == ["msg"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_openapi_other_methods_405(server, method):
    r = server.request(method, "/openapi.json", json={})
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == "GET, HEAD"
    assert list(r.json()) == ["msg"]


def test_openapi_needs_no_database(livy_server):
    """Served from the module itself: a server whose database is unreachable still answers it
    (while /version, which reads the database, is a 503)."""
    srv = livy_server(conninfo="host=127.0.0.1 port=1 dbname=livy user=livy connect_timeout=2",
                      start=False)
    srv.allow_errors(r"answering 503", r"database", r"connect", r"Connection refused")
    srv.start()
    assert srv.get("/version").status_code == 503
    r = srv.get("/openapi.json")
    assert r.status_code == 200 and r.json() == spec()


def test_openapi_csrf_and_admission(livy_server, clean_db):
    """The same rules as /version: a GET needs no X-Requested-By under CSRF protection; under
    access control an anonymous request is not admitted (403 {"msg"}), as for /version."""
    srv = livy_server(extra_conf="<Location />\n    LivyCsrfProtection On\n</Location>\n"
                                 "<Location /closed>\n    LivyAccessControl On\n</Location>\n")
    assert srv.get("/openapi.json").status_code == 200
    assert srv.get("/closed/version").status_code == 403
    r = srv.get("/closed/openapi.json")
    assert r.status_code == 403 and list(r.json()) == ["msg"]
    assert "ETag" not in r.headers and r.headers["Cache-Control"] == "no-store"


# ------------------------------------------------------------------ the spec's routes are the server's


def test_spec_describes_every_engine_route():
    assert set(spec()["paths"]) == ENGINE_ROUTES


def test_every_route_of_livy_route_h_is_listed():
    """The route enum of engine/livy_route.h names each route's path in its comment: a route
    added there must come to ENGINE_ROUTES (and so to the spec) too."""
    header = (h.ROOT / "engine" / "livy_route.h").read_text()
    enum = header[header.index("typedef enum"):header.index("} livy_route_e;")]
    paths = []
    for m in re.finditer(r"LIVY_ROUTE_\w+,?\s*/\* (/\S*?)(?::|\s|\*/)(and (/[^\s:]+))?", enum):
        paths.append(m.group(1))
        also = m.group(3)
        if also and also.count("/") == 1 and m.group(1).count("/") > 1:
            paths.append(m.group(1).rsplit("/", 1)[0] + also)  # "/sessions/{id}/log and /logs"
        elif also:
            paths.append(also)  # "/ui/ and /ui/{file}"
    assert len(paths) >= len(ENGINE_ROUTES) - 1, paths
    missing = [p for p in paths
               if p not in ENGINE_ROUTES and not any(r.startswith(p + "/") for r in ENGINE_ROUTES)]
    assert not missing, f"routes of livy_route.h not in the spec: {missing}"


def test_spec_objects_are_closed():
    """Every object the spec describes field by field is closed (the server refuses unknown
    request fields, and its answers have exactly the documented keys), and its required keys are
    all defined (schemathesis would otherwise accept anything under an undefined one)."""
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node:
                if node.get("additionalProperties") is not False:
                    problems.append(f"{where}: additionalProperties is not false")
                missing = set(node.get("required", [])) - set(node["properties"])
                if missing:
                    problems.append(f"{where}: required but undefined: {sorted(missing)}")
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(spec()["components"], "#/components")
    walk(spec()["paths"], "#/paths")
    assert not problems, "\n".join(problems)


def spec_methods(template: str) -> set[str]:
    ops = {m.upper() for m in spec()["paths"][template] if m in
           ("get", "post", "delete", "put", "patch", "options", "head")}
    return ops | ({"HEAD"} if "GET" in ops else set())


def test_server_methods_agree_with_spec(server):
    """For every path of the spec, on real resources: the methods the spec lists are served (no
    404 or 405), every other method is a 405 whose Allow names exactly the spec's; paths the spec
    does not have are 404s."""
    s = server.post("/sessions", json={"kind": "pyspark"}).json()["id"]
    st = server.post(f"/sessions/{s}/statements", json={"code": "1"}).json()["id"]
    b = server.post("/batches", json={"file": "hdfs:///jobs/pi.py"}).json()["id"]
    values = {"id": str(s), "sid": str(st), "page": "jobs/", "file": "index.html"}
    problems = []
    deletes = []
    for template in sorted(spec()["paths"]):
        path = template.format(**values)
        if template.startswith("/batches/"):
            path = template.format(id=str(b))
        allowed = spec_methods(template)
        for method in METHODS:
            if method in allowed and (method == "DELETE" or template.endswith("/stop")):
                deletes.append((method, path))  # last: they end the resource
                continue
            body = {} if method in ("POST", "PUT", "PATCH") else None
            if template.endswith("/statements") and method == "POST":
                body = {"code": "2"}
            if template.endswith("/completion"):
                body = {"code": "sp", "kind": "pyspark", "cursor": 2}
            r = server.request(method, path, json=body, allow_redirects=False)
            if method in allowed:
                if r.status_code in (404, 405):
                    problems.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            elif r.status_code != 405:
                problems.append(f"{method} {path}: {r.status_code}, want 405")
            elif set(r.headers["Allow"].split(", ")) != allowed:
                problems.append(f"{method} {path}: Allow {r.headers['Allow']}, spec {sorted(allowed)}")
    for method, path in sorted(deletes, key=lambda d: d[0] == "DELETE"):
        r = server.request(method, path)
        if r.status_code not in (200, 204):
            problems.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
    for path in ["/", "/openapi.yaml", "/openapi", "/version/x", "/sessions/0/nope",
                 "/batches/0/statements", "/batches/0/stop", "/sessions/0/statements/0/x",
                 "/metrics-nope", "/sessions/0/statements/0/cancel/x"]:
        for method in ("GET", "POST"):
            r = server.request(method, path)
            if r.status_code != 404:
                problems.append(f"{method} {path}: {r.status_code}, want 404 (not in the spec)")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ schemathesis


def schemathesis_bin():
    exe = h.VENV_PYTHON.parent / "schemathesis"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: scripts/install-deps installs tests/requirements.txt",
                    pytrace=False)
    return exe


def run_schemathesis(server, tmp_path, max_examples: int, *extra: str, auth=None) -> str:
    """Runs schemathesis over every operation of the document the server serves (saved to a
    file first: under authentication too), with the spec's examples, the coverage phase's
    boundary cases, max_examples generated cases per operation (valid and invalid data) and the
    stateful phase (links inferred from the Location headers), under every check but one.
    Deterministic: derandomized generation, one worker. Returns its output; fails the test on
    any failure or error.

    positive_data_acceptance is left out: it expects every schema-valid request to succeed, and
    this API refuses some for reasons no schema can state: a name a live session already has,
    a shared session's statement without `kind`, a local batch path outside
    LivyBatchAllowedPaths (all 400s the spec documents), and integers written with a fraction
    (`2.0`, an integer to JSON Schema, a 400 here on purpose: test_validate.c). Every other
    check runs, negative_data_rejection included (schema-invalid requests must be refused)."""
    served = server.get("/openapi.json", auth=auth)
    assert served.status_code == 200, served.text[:300]
    spec_file = tmp_path / "openapi.json"
    spec_file.write_bytes(served.content)
    junit = tmp_path / "junit.xml"
    cmd = [str(schemathesis_bin()), "run", str(spec_file),
           "--url", server.url,
           "--checks", "all", "--exclude-checks", "positive_data_acceptance",
           "--phases", "examples,coverage,fuzzing,stateful",
           "--max-examples", str(max_examples),
           "--generation-deterministic",
           "--workers", "1",
           "--request-timeout", "20",
           "--max-redirects", "0",  # answers as they are: /ui's 301 is documented
           "--no-color",
           "--report", "junit", "--report-junit-path", str(junit), *extra]
    if auth:
        cmd += ["--auth", f"{auth[0]}:{auth[1]}"]
    started = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    took = time.monotonic() - started
    out = run.stdout + run.stderr
    print(out[-4000:])
    print(f"schemathesis: {took:.1f}s, exit {run.returncode}")
    assert run.returncode == 0, out[-20000:]
    operations = {c.get("classname") or c.get("name") for c in ET.parse(junit).getroot().iter("testcase")}
    assert len(operations) >= len(ENGINE_ROUTES), f"schemathesis tested only {sorted(operations)}"
    return out


def test_schemathesis_finds_nothing(server, tmp_path):
    """The server as conf/livy.conf sets it up (its ErrorDocuments), no security: no 5xx, no
    answer outside the documented statuses, content types, headers and schemas."""
    out = run_schemathesis(server, tmp_path, MAX_EXAMPLES)
    assert re.search(r"Tested: +%d\b" % operation_count(), out), out[-3000:]


def test_schemathesis_under_security(livy_server, clean_db, work_dir, tmp_path):
    """Basic authentication, CSRF protection and access control, as a view user (admitted, may
    read the metrics) who sends no X-Requested-By: every POST and DELETE is a 400, documented as
    such."""
    htpasswd = h.write_htpasswd(work_dir / "openapi-htpasswd", ["alice"])  # httpd's User reads it
    srv = livy_server(extra_conf=h.basic_auth_conf(htpasswd, """
        LivyMetrics On
        LivyUI On
        LivyCsrfProtection On
        LivyAccessControl On
        LivyViewUsers alice
        """, error_documents=True))
    run_schemathesis(srv, tmp_path, max(5, MAX_EXAMPLES // 5),
                     auth=("alice", h.password("alice")))


def operation_count() -> int:
    return sum(1 for item in spec()["paths"].values() for m in item
               if m in ("get", "post", "delete", "put", "patch"))
