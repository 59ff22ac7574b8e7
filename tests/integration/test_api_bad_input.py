"""Bad input (issues 3 and 5): a table of every kind of bad request, each answered with the right
status and a JSON {"msg": ...} naming the problem, leaving the database exactly as it was; hostile
strings round-trip byte-exact; httpd's own errors are JSON through ErrorDocument; nothing answers
500 and no worker crashes (the error log is checked after every case and at the end).

One httpd per MPM serves the whole table (starting one per case would take minutes); each test
empties the database and recreates the same few sessions through the API."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

import livy_harness as h

BODY_LIMIT = 200 * 1024       # LivyMaxBodySize of the table's server
STATEMENT_LIMIT = 150 * 1024  # LivyMaxStatementSize


def shipped_error_documents() -> tuple[list[str], list[str]]:
    """The ErrorDocument lines of conf/livy.conf, split into those inside a <Location> block and
    those outside one, so that the tests run with the placement the project ships."""
    inside, outside = [], []
    in_location = False
    for line in (h.ROOT / "conf" / "livy.conf").read_text().splitlines():
        text = line.strip()
        if re.match(r"(?i)<Location\b", text):
            in_location = True
        elif re.match(r"(?i)</Location>", text):
            in_location = False
        elif re.match(r"(?i)ErrorDocument\s", text):
            (inside if in_location else outside).append(text)
    assert inside or outside, "conf/livy.conf has no ErrorDocument lines"
    return inside, outside


def table_conf() -> str:
    inside, outside = shipped_error_documents()
    return ("\n".join(outside) + "\n<Location />\n"
            f"    LivyMaxBodySize {BODY_LIMIT}\n"
            f"    LivyMaxStatementSize {STATEMENT_LIMIT}\n"
            + "".join(f"    {line}\n" for line in inside)
            + "</Location>\n")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", params=h.selected_mpms())
def table_server(request, work_dir, pg):
    """One server per MPM for the module, with a small body limit and the shipped ErrorDocuments."""
    yield from h.module_server(work_dir, pg, f"bad-input-{request.param}", mpm=request.param,
                               extra_conf=table_conf())


@pytest.fixture
def world(table_server, clean_db):
    """The database emptied, then: a live shared session named 'taken' with two statements and
    three log lines, a live pyspark session, and a stopped (dead) session. Fails the test when the
    error log gained unexpected lines during it (a worker crash, a 500)."""
    srv = table_server
    ids = {}

    def create(body):
        r = srv.post("/sessions", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    ids["live"] = create({"name": "taken"})
    ids["typed"] = create({"kind": "pyspark", "name": "typed"})
    ids["ended"] = create({"kind": "pyspark", "name": "was-here"})
    for code in ("1 + 1", "2 + 2"):
        r = srv.post(f"/sessions/{ids['live']}/statements", json={"code": code, "kind": "pyspark"})
        assert r.status_code == 201, r.text
    assert srv.post(f"/sessions/{ids['ended']}/stop").status_code == 204
    clean_db.psql(f"INSERT INTO session_log (session_id, seq, line) VALUES ({ids['live']}, 0, 'a'), "
                  f"({ids['live']}, 1, 'b'), ({ids['live']}, 2, 'c'); "
                  f"UPDATE sessions SET next_log_seq = 3 WHERE id = {ids['live']}")
    before = len(srv.unexpected_error_lines())
    yield ids
    bad = srv.unexpected_error_lines()[before:]
    assert not bad, "unexpected error-log lines:\n" + "\n".join(bad)


# ------------------------------------------------------------------ raw HTTP


Answer = h.Answer
raw = h.raw                          # one request sent exactly as given
assert_json_msg = h.assert_json_msg  # the answer is {"msg": "..."}: its message


# ------------------------------------------------------------------ the table


@dataclass
class Case:
    id: str
    method: str
    path: str
    body: bytes | None = None
    status: int = 400
    words: tuple = ()          # each must appear in msg (case-insensitive)
    headers: dict = field(default_factory=dict)
    chunked: bool = False
    allow: str | None = None   # the Allow header of a 405


def j(obj) -> bytes:
    return json.dumps(obj).encode()


CASES: list[Case] = []


def case(*args, **kw):
    CASES.append(Case(*args, **kw))


# -- bodies that are not one JSON object
for route, path in (("sessions", "/sessions"), ("statements", "/sessions/{live}/statements"),
                    ("completion", "/sessions/{live}/completion")):
    case(f"{route}-malformed-json", "POST", path, b'{"kind": "spark",', words=("JSON",))
    case(f"{route}-not-json", "POST", path, b"kind=spark", words=("JSON",))
    case(f"{route}-empty-body", "POST", path, b"", words=("empty",))
    case(f"{route}-whitespace-body", "POST", path, b"  \r\n ", words=("empty",))
    case(f"{route}-json-array", "POST", path, b'[{"kind": "spark"}]', words=("object", "array"))
    case(f"{route}-json-string", "POST", path, b'"spark"', words=("object", "string"))
    case(f"{route}-json-number", "POST", path, b"42", words=("object",))
    case(f"{route}-json-null", "POST", path, b"null", words=("object",))
    case(f"{route}-duplicate-keys", "POST", path, b'{"code": "1", "code": "2", "kind": "sql", "name": "a"}',
         words=("duplicate",))
    case(f"{route}-invalid-utf8", "POST", path, b'{"code": "\xff\xfe", "kind": "sql"}', words=("JSON",))
    case(f"{route}-overlong-utf8", "POST", path, b'{"code": "\xc0\xaf", "kind": "sql"}', words=("JSON",))
    case(f"{route}-lone-surrogate", "POST", path, b'{"code": "\\ud800", "kind": "sql"}', words=("JSON",))
    case(f"{route}-trailing-garbage", "POST", path, b'{"code": "1", "kind": "sql"} x', words=("JSON",))
    case(f"{route}-deep-nesting", "POST", path, b'{"code": ' + b"[" * 5000 + b"]" * 5000 + b"}",
         words=("JSON", "depth"))
    case(f"{route}-nul-in-string", "POST", path, b'{"code": "a\\u0000b", "kind": "sql", "name": "x\\u0000"}',
         words=("u0000",))
case("sessions-bom", "POST", "/sessions", b'\xef\xbb\xbf{}', words=("JSON",))
case("sessions-chunked-malformed", "POST", "/sessions", b'{"kind": ', chunked=True, words=("JSON",))
case("statements-nul-in-code-only", "POST", "/sessions/{typed}/statements", b'{"code": "\\u0000"}',
     words=("u0000",))
case("sessions-nul-in-conf-key", "POST", "/sessions", b'{"conf": {"a\\u0000b": "1"}}', words=("u0000",))
case("sessions-nul-in-conf-value", "POST", "/sessions", b'{"conf": {"spark.a": "\\u0000"}}', words=("u0000",))

# -- POST /sessions: wrong types for every field
WRONG_TYPES = {
    "kind": [1, ["spark"], True],
    "proxyUser": [1, {"u": "alice"}, ["alice"]],
    "name": [1, True, ["n"]],
    "driverMemory": [512, ["1g"], 1.5],
    "executorMemory": [1024, {"m": 1}],
    "queue": [["q"], 7],
    "driverCores": ["2", 1.5, True, [1], -1, 10**7],
    "executorCores": ["2", 2.0, -3],
    "numExecutors": ["3", False, {"n": 1}, 10**9],
    "heartbeatTimeoutInSecond": ["60", 0.5, -5],
    "jars": ["a.jar", [1], {"a": "b"}, [["a.jar"]], [None]],
    "pyFiles": ["x.py", [True]],
    "files": ["f", [1.5]],
    "archives": ["a.zip", [{"a": 1}]],
    "conf": [["spark.a=1"], "spark.a=1", 5, {"spark.a": None}, {"spark.a": {"b": "c"}},
             {"spark.a": ["x"]}],
    "ttl": [60, True, ["1h"]],
    "idleTimeout": [600, {"t": "1h"}],
}
for fname, values in WRONG_TYPES.items():
    for i, v in enumerate(values):
        # the field's name in the message; conf values are named by their key
        words = ("spark.a",) if fname == "conf" and isinstance(v, dict) else (fname,)
        case(f"sessions-type-{fname}-{i}-{type(v).__name__}", "POST", "/sessions", j({fname: v}), words=words)
case("sessions-conf-empty-key", "POST", "/sessions", j({"conf": {"": "x"}}), words=("conf", "empty"))
case("sessions-int-too-big-for-json", "POST", "/sessions", b'{"driverCores": 99999999999999999999}',
     words=("JSON",))
case("sessions-real-overflow", "POST", "/sessions", b'{"conf": {"spark.a": 1e400}}', words=("JSON",))
case("sessions-conf-deep-but-parseable", "POST", "/sessions",
     b'{"conf": {"spark.a": ' + b"[" * 100 + b"]" * 100 + b"}}", words=("spark.a",))

# -- unknown fields
case("sessions-unknown-field", "POST", "/sessions", j({"kind": "spark", "nmae": "typo"}), words=("nmae",))
case("sessions-unknown-field-case", "POST", "/sessions", j({"Kind": "spark"}), words=("Kind",))
case("sessions-batch-field", "POST", "/sessions", j({"file": "app.jar", "className": "A"}), words=("unknown",))
case("statements-unknown-field", "POST", "/sessions/{typed}/statements", j({"code": "1", "cursor": 1}),
     words=("cursor",))
case("completion-unknown-field", "POST", "/sessions/{typed}/completion",
     j({"code": "1", "kind": "pyspark", "cursor": 1, "x": 2}), words=("'x'",))
case("cancel-unknown-field", "POST", "/sessions/{live}/statements/0/cancel", j({"force": True}), words=("force",))
case("cancel-not-object", "POST", "/sessions/{live}/statements/0/cancel", b"[]", words=("object",))
case("stop-unknown-field", "POST", "/sessions/{live}/stop", j({"now": True}), words=("now",))
case("stop-malformed", "POST", "/sessions/{live}/stop", b"{", words=("JSON",))
case("connect-unknown-field", "POST", "/sessions/{live}/connect", j({"x": 1}), words=("'x'",))

# -- kinds
for k in ("java", "SPARK", "Python", "", "pyspark3", "scala "):
    case(f"sessions-bad-kind-{k or 'empty'}", "POST", "/sessions", j({"kind": k}), words=("kind",))
for k in ("shared", "java", "", "Spark"):
    case(f"statements-bad-kind-{k or 'empty'}", "POST", "/sessions/{live}/statements",
         j({"code": "1", "kind": k}), words=("kind",))
case("statements-kind-wrong-type", "POST", "/sessions/{live}/statements", j({"code": "1", "kind": 3}),
     words=("kind",))
case("statements-shared-without-kind", "POST", "/sessions/{live}/statements", j({"code": "1"}), words=("kind",))
case("statements-shared-null-kind", "POST", "/sessions/{live}/statements", j({"code": "1", "kind": None}),
     words=("kind",))
case("completion-bad-kind", "POST", "/sessions/{typed}/completion", j({"code": "1", "kind": "cobol", "cursor": 0}),
     words=("kind",))
case("completion-no-kind", "POST", "/sessions/{typed}/completion", j({"code": "1", "cursor": 0}), words=("kind",))
case("completion-no-code", "POST", "/sessions/{typed}/completion", j({"kind": "pyspark", "cursor": 0}),
     words=("code",))
case("completion-negative-cursor", "POST", "/sessions/{typed}/completion",
     j({"code": "1", "kind": "pyspark", "cursor": -1}), words=("cursor",))
case("completion-string-cursor", "POST", "/sessions/{typed}/completion",
     j({"code": "1", "kind": "pyspark", "cursor": "1"}), words=("cursor",))

# -- statement code
case("statements-no-code", "POST", "/sessions/{typed}/statements", j({"kind": "pyspark"}), words=("code",))
case("statements-empty-object", "POST", "/sessions/{typed}/statements", b"{}", words=("code",))
case("statements-code-number", "POST", "/sessions/{typed}/statements", j({"code": 42}), words=("code",))
case("statements-code-null", "POST", "/sessions/{typed}/statements", j({"code": None}), words=("code",))
case("statements-code-list", "POST", "/sessions/{typed}/statements", j({"code": ["a", "b"]}), words=("code",))
case("statements-code-over-statement-limit", "POST", "/sessions/{typed}/statements",
     j({"code": "x" * (STATEMENT_LIMIT + 1)}), words=("code", "limit"))

# -- names
case("name-all-digits", "POST", "/sessions", j({"name": "12345"}), words=("digits",))
case("name-zero", "POST", "/sessions", j({"name": "0"}), words=("digits",))
case("name-empty", "POST", "/sessions", j({"name": ""}), words=("name", "empty"))
case("name-duplicate-live", "POST", "/sessions", j({"name": "taken"}), words=("duplicate", "taken"))
case("name-duplicate-live-typed", "POST", "/sessions", j({"kind": "sql", "name": "typed"}),
     words=("duplicate", "typed"))
case("name-2000-bytes", "POST", "/sessions", j({"name": "n" * 2000}), words=("name", "2000"))
case("name-2000-bytes-multibyte", "POST", "/sessions", j({"name": "é" * 1000}), words=("name", "2000"))
case("name-with-slash", "POST", "/sessions", j({"name": "a/b"}), words=("name", "/"))

# -- blocked conf
for key in ("spark.master", "spark.submit.deployMode"):
    case(f"conf-blocked-{key}", "POST", "/sessions", j({"conf": {key: "yarn"}}), words=(key,))
    case(f"conf-blocked-{key}-among-others", "POST", "/sessions",
         j({"kind": "spark", "conf": {"spark.a": "1", key: "local[*]", "spark.b": "2"}}), words=(key,))

# -- durations
for fname in ("ttl", "idleTimeout"):
    for i, v in enumerate(["10 parsecs", "", "-5m", "1.5h", "m", "10mm", "forever", "1h30m", "9" * 30 + "d"]):
        case(f"duration-{fname}-{i}", "POST", "/sessions", j({fname: v}), words=(fname, "duration"))

# -- from / size / order
for name, path in (("sessions", "/sessions"), ("statements", "/sessions/{live}/statements"),
                   ("log", "/sessions/{live}/log"), ("logs", "/sessions/{live}/logs")):
    for param in ("from", "size"):
        for label, value in (("alpha", "abc"), ("empty", ""), ("float", "1.5"), ("exp", "1e3"),
                             ("hex", "0x10"), ("huge", "99999999999"), ("enormous", "9" * 40),
                             ("plus", "%2B5"), ("space", "%201"), ("bad-utf8", "%FF")):
            case(f"{name}-{param}-{label}", "GET", f"{path}?{param}={value}", status=400, words=(param,)
                 if label != "bad-utf8" else ("UTF-8",))
        if not (name in ("log", "logs") and param == "size"):  # the log's size<0 means all lines
            case(f"{name}-{param}-negative", "GET", f"{path}?{param}=-1", status=400, words=(param,))
    case(f"{name}-bad-escape", "GET", f"{path}?from=%zz", status=400, words=("escape",))
    case(f"{name}-nul-escape", "GET", f"{path}?size=%00", status=400, words=("escape",))
case("log-size-hugely-negative", "GET", "/sessions/{live}/log?size=-99999999999", status=400, words=("size",))
case("statements-bad-order", "GET", "/sessions/{live}/statements?order=sideways", status=400, words=("order",))
case("statements-order-case", "GET", "/sessions/{live}/statements?order=DESC", status=400, words=("order",))

# -- unknown sessions and statements
for label, ref in (("id", "424242"), ("name", "no-such-session"), ("huge-id", "9" * 30),
                   ("bad-utf8", "%FF%FE"), ("unicode-name", "%E2%98%83")):
    words = () if label == "bad-utf8" else (("424242",) if label == "id" else ())
    case(f"unknown-session-{label}-get", "GET", f"/sessions/{ref}", status=404, words=("not found",) + words)
    case(f"unknown-session-{label}-state", "GET", f"/sessions/{ref}/state", status=404, words=("not found",))
    case(f"unknown-session-{label}-log", "GET", f"/sessions/{ref}/log", status=404, words=("not found",))
    case(f"unknown-session-{label}-delete", "DELETE", f"/sessions/{ref}", status=404, words=("not found",))
    case(f"unknown-session-{label}-statement", "POST", f"/sessions/{ref}/statements",
         j({"code": "1", "kind": "sql"}), status=404, words=("not found",))
    case(f"unknown-session-{label}-stop", "POST", f"/sessions/{ref}/stop", status=404, words=("not found",))
    case(f"unknown-session-{label}-connect", "POST", f"/sessions/{ref}/connect", status=404, words=("not found",))
    case(f"unknown-session-{label}-completion", "POST", f"/sessions/{ref}/completion",
         j({"code": "1", "kind": "sql"}), status=404, words=("not found",))
    case(f"unknown-session-{label}-cancel", "POST", f"/sessions/{ref}/statements/0/cancel",
         status=404, words=("not found",))
for label, ref in (("id", "2"), ("large", "999999"), ("huge", "99999999999"), ("enormous", "9" * 30),
                   ("negative", "-1"), ("alpha", "abc"), ("bad-utf8", "%FF")):
    case(f"unknown-statement-{label}-get", "GET", f"/sessions/{{live}}/statements/{ref}", status=404,
         words=("not found",))
    case(f"unknown-statement-{label}-cancel", "POST", f"/sessions/{{live}}/statements/{ref}/cancel",
         status=404, words=("not found",))

# -- ended sessions
case("ended-post-code", "POST", "/sessions/{ended}/statements", j({"code": "1"}), words=("dead",))
case("ended-post-code-by-name", "POST", "/sessions/was-here/statements", j({"code": "1"}), words=("dead",))
case("ended-connect", "POST", "/sessions/{ended}/connect", status=400, words=("dead",))
case("ended-completion", "POST", "/sessions/{ended}/completion", j({"code": "x", "kind": "pyspark", "cursor": 1}),
     words=("dead",))

# -- bodies over LivyMaxBodySize
big = j({"kind": "spark", "conf": {"spark.a": "x" * (BODY_LIMIT + 10)}})
case("body-over-limit-sessions", "POST", "/sessions", big, status=413, words=("LivyMaxBodySize",))
case("body-over-limit-statements", "POST", "/sessions/{typed}/statements", j({"code": "y" * (BODY_LIMIT + 1)}),
     status=413, words=("LivyMaxBodySize",))
case("body-over-limit-chunked", "POST", "/sessions/{typed}/statements", j({"code": "z" * (BODY_LIMIT + 1)}),
     status=413, words=("LivyMaxBodySize",), chunked=True)
case("body-over-limit-cancel", "POST", "/sessions/{live}/statements/0/cancel", b" " * (BODY_LIMIT + 1),
     status=413, words=("LivyMaxBodySize",))

# -- wrong methods (405 with Allow) and unknown routes (404)
for method, path, allow in (
        ("PUT", "/sessions", "GET, HEAD, POST"), ("DELETE", "/sessions", "GET, HEAD, POST"),
        ("PATCH", "/sessions/{live}", "GET, HEAD, DELETE"), ("POST", "/sessions/{live}", "GET, HEAD, DELETE"),
        ("POST", "/version", "GET, HEAD"), ("DELETE", "/version", "GET, HEAD"),
        ("DELETE", "/sessions/{live}/state", "GET, HEAD"), ("POST", "/sessions/{live}/log", "GET, HEAD"),
        ("PUT", "/sessions/{live}/logs", "GET, HEAD"), ("GET", "/sessions/{live}/stop", "POST"),
        ("GET", "/sessions/{live}/connect", "POST"), ("DELETE", "/sessions/{live}/completion", "POST"),
        ("DELETE", "/sessions/{live}/statements", "GET, HEAD, POST"),
        ("DELETE", "/sessions/{live}/statements/0", "GET, HEAD"),
        ("POST", "/sessions/{live}/statements/0", "GET, HEAD"),
        ("GET", "/sessions/{live}/statements/0/cancel", "POST"),
        ("OPTIONS", "/sessions", "GET, HEAD, POST"), ("PROPFIND", "/sessions/{live}", "GET, HEAD, DELETE")):
    case(f"method-{method}-{path.replace('/', '_')}", method, path, j({"code": "1"}) if method != "GET" else None,
         status=405, words=(method,), allow=allow)
for path in ("/", "/nope", "/version/x", "/session", "/sessions/{live}/nope", "/sessions/{live}/statement",
             "/sessions/{live}/statements/0/nope", "/sessions/{live}/statements/0/cancel/x",
             "/sessions/{live}/log/x", "/batch", "/sessions/{live}/state/x", "/Sessions",
             "/sessions/{live}/statements/0/cancel/x/y/z"):
    case(f"route-{path.replace('/', '_')}", "GET", path, status=404, words=())
case("route-unknown-post", "POST", "/sessions/{live}/restart", j({}), status=404, words=())
case("route-unknown-bad-utf8", "GET", "/%FF%FE", status=404, words=())


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_request(table_server, world, c: Case):
    path = c.path.format(**world)
    before = table_server.db.snapshot()
    a = raw(table_server, c.method, path, c.body, c.headers, c.chunked)
    assert a.status == c.status, f"{c.method} {path}: expected {c.status}, got {a.status}: {a.body[:400]!r}"
    msg = assert_json_msg(a)
    for w in c.words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    if c.allow:
        assert a.headers.get("Allow") == c.allow, a.headers
    after = table_server.db.snapshot()
    changed = [t for t in before if before[t] != after[t]]
    assert not changed, f"the database changed: {changed}"
    # The server still answers normally afterwards.
    assert raw(table_server, "GET", f"/sessions/{world['live']}/state").status == 200


def test_the_table_covers_every_session_field():
    # Every field of POST /sessions (LIVY-API.md) has wrong-type cases above.
    fields = {"kind", "proxyUser", "jars", "pyFiles", "files", "archives", "driverMemory", "driverCores",
              "executorMemory", "executorCores", "numExecutors", "queue", "name", "conf",
              "heartbeatTimeoutInSecond", "ttl", "idleTimeout"}
    assert set(WRONG_TYPES) == fields


# ------------------------------------------------------------------ ErrorDocument: httpd's own errors


HTTPD_LEVEL = [
    ("nul-in-path", "/sessions/%00", 404),
    ("encoded-slash-in-path", "/sessions/a%2Fb", 404),
    ("bad-escape-in-path", "/sessions/%zz", 400),
]


@pytest.mark.parametrize("label,path,status", HTTPD_LEVEL, ids=[x[0] for x in HTTPD_LEVEL])
def test_httpd_errors_are_json_with_the_shipped_errordocuments(table_server, world, label, path, status):
    """conf/livy.conf's ErrorDocument lines are meant to make httpd's own errors JSON too
    (docs/api.md says so). The server here places them exactly as conf/livy.conf does."""
    table_server.allow_errors(r"AH10244: invalid URI path")  # httpd's own line for %zz
    a = raw(table_server, "GET", path)
    assert a.status == status, a.body[:300]
    assert_json_msg(a)


@pytest.mark.parametrize("label,path,status", HTTPD_LEVEL, ids=[x[0] for x in HTTPD_LEVEL])
def test_httpd_errors_are_json_with_server_level_errordocuments(livy_server, clean_db, mpm, label, path, status):
    """The same errors with the ErrorDocument lines at server level: httpd raises these before
    it walks <Location>, so only server-level ErrorDocuments see them. The handler answers the
    redirected request with the original status, as JSON."""
    inside, outside = shipped_error_documents()
    srv = livy_server(mpm=mpm, extra_conf="\n".join(inside + outside))
    srv.allow_errors(r"AH10244: invalid URI path")  # httpd's own line for %zz
    a = raw(srv, "GET", path)
    assert a.status == status, a.body[:300]
    assert_json_msg(a)
    # The API's own errors are untouched by the redirect.
    a = raw(srv, "GET", "/sessions/77")
    assert a.status == 404 and assert_json_msg(a) == "Session '77' not found."
    a = raw(srv, "PUT", "/sessions")
    assert a.status == 405 and a.headers["Allow"] == "GET, HEAD, POST"


def test_error_path_itself_is_a_plain_404_when_not_redirected(table_server, world):
    a = raw(table_server, "GET", "/error")
    assert a.status == 404
    assert_json_msg(a)


# ------------------------------------------------------------------ round trips


HOSTILE = {
    "quotes": 'say "hi" and \'bye\' and `tick`',
    "backslashes": "C:\\temp\\new \\\\ \\u0041 \\n \\\" end\\",
    "sql": "'; DROP TABLE sessions; --",
    "sql2": "Robert'); DELETE FROM statements WHERE ('1'='1",
    "percent": "100% of %s and %n %x %%",
    "emoji": "emoji 😀🎉👩‍👩‍👧 done",
    "non-latin": "Привет мир · 你好世界 · مرحبا · שלום · こんにちは · ∑∞≠",
    "controls": "tab\there\nnewline\r\ncrlf \x01\x07\x1b[31m \x7f",
    "unicode-edge": "\u2028\u2029\ufeff\uffff\U0010ffff",
    "html": "<script>alert(1)</script>&amp;",
    "json-looking": '{"msg": "not really"}',
}


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw-utf8"])
@pytest.mark.parametrize("label", list(HOSTILE))
def test_hostile_strings_round_trip_exactly(table_server, world, label, ascii_only):
    text = HOSTILE[label]
    srv = table_server
    body = json.dumps({"kind": "pyspark", "name": f"n {label} {ascii_only} {text}".replace("/", "|"),
                       "conf": {f"spark.k.{label}": text, "spark.other": text[::-1]},
                       "driverMemory": text, "queue": text, "jars": [text, text + "2"]},
                      ensure_ascii=ascii_only).encode()
    a = raw(srv, "POST", "/sessions", body, {"Content-Type": "application/json"})
    assert a.status == 201, a.body[:400]
    sent = json.loads(body)
    s = a.json()
    for k in ("name", "conf", "driverMemory", "queue", "jars"):
        assert s[k] == sent[k], k
    # Stored exactly (byte-for-byte digests computed by PostgreSQL) and returned exactly.
    md5 = lambda t: hashlib.md5(t.encode()).hexdigest()  # noqa: E731
    assert srv.db.psql(f"SELECT md5(name), md5(driver_memory), md5(queue) FROM sessions WHERE id = {s['id']}") \
        == [(md5(sent["name"]), md5(text), md5(text))]
    got = srv.get(f"/sessions/{s['id']}").json()
    assert {k: got[k] for k in ("name", "conf", "driverMemory", "queue", "jars")} == \
           {k: sent[k] for k in ("name", "conf", "driverMemory", "queue", "jars")}
    assert srv.get("/sessions/" + quote(sent["name"], safe="")).json()["id"] == s["id"]

    code = f"print({text!r})  # {text}"
    body = json.dumps({"code": code}, ensure_ascii=ascii_only).encode()
    a = raw(srv, "POST", f"/sessions/{s['id']}/statements", body)
    assert a.status == 201, a.body[:400]
    st = a.json()
    assert st["code"] == code
    assert srv.db.psql(f"SELECT md5(code) FROM statements WHERE session_id = {s['id']} AND id = {st['id']}") \
        == [(md5(code),)]
    assert srv.get(f"/sessions/{s['id']}/statements/{st['id']}").json()["code"] == code
    assert srv.get(f"/sessions/{s['id']}/statements").json()["statements"][0]["code"] == code
    # The tables survived the SQL text.
    assert srv.db.psql("SELECT count(*) FROM sessions") == [("4",)]


def test_hostile_log_lines_are_returned_exactly(table_server, world):
    srv = table_server
    sid = world["live"]
    lines = list(HOSTILE.values())
    srv.db.psql("DELETE FROM session_log WHERE session_id = %d" % sid)
    for i, line in enumerate(lines):
        literal = "'" + line.replace("'", "''") + "'"
        srv.db.psql(f"INSERT INTO session_log (session_id, seq, line) VALUES ({sid}, {i}, {literal})")
    assert srv.get(f"/sessions/{sid}/log?size=-1").json()["log"] == lines
    assert srv.get(f"/sessions/{sid}").json()["log"] == lines[-10:]


def test_100kb_code_round_trips_exactly(table_server, world):
    srv = table_server
    chunk = "x = '\"quoted\" \\\\ back' + \"ünïcødé 😀\"  # '; DROP TABLE statements; --\n"
    code = (chunk * (100 * 1024 // len(chunk.encode()) + 1))
    assert len(code.encode()) > 100 * 1024 and len(code.encode()) < STATEMENT_LIMIT
    body = json.dumps({"code": code}, ensure_ascii=False).encode()
    assert len(body) < BODY_LIMIT
    a = raw(srv, "POST", f"/sessions/{world['typed']}/statements", body)
    assert a.status == 201, a.body[:300]
    st = a.json()
    assert st["code"] == code
    got = srv.get(f"/sessions/{world['typed']}/statements/{st['id']}").json()
    assert got["code"] == code
    assert srv.db.psql(f"SELECT md5(code), octet_length(code) FROM statements WHERE session_id = {world['typed']} "
                       f"AND id = {st['id']}") == [(hashlib.md5(code.encode()).hexdigest(), str(len(code.encode())))]
    # Chunked, without a Content-Length, too.
    a = raw(srv, "POST", f"/sessions/{world['typed']}/statements", body, chunked=True)
    assert a.status == 201 and a.json()["code"] == code


def test_code_at_the_statement_limit_is_accepted(table_server, world):
    a = raw(table_server, "POST", f"/sessions/{world['typed']}/statements", j({"code": "y" * STATEMENT_LIMIT}))
    assert a.status == 201, a.body[:300]


def test_name_at_the_limit_is_accepted_and_found(table_server, world):
    name = "n" * 1024
    a = raw(table_server, "POST", "/sessions", j({"name": name}))
    assert a.status == 201, a.body[:300]
    assert table_server.get(f"/sessions/{name}").json()["name"] == name


def test_no_request_in_the_table_left_a_500_or_a_crash(table_server, world):
    # Every case ran against this server; a 500 would have failed its case. A worker crash
    # shows in the error log (AH00052 ... exit signal), which is checked here once more.
    access = (table_server.root / "logs" / "access_log").read_text(errors="replace").splitlines()
    fives = [line for line in access if re.search(r'" 5\d\d ', line)]
    assert not fives, fives[:10]
    assert not table_server.unexpected_error_lines()
