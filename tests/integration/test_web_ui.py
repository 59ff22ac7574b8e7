"""The web UI (<mount>/ui/, LivyUI On) in a real browser: headless Chromium driven by Selenium, against
httpd with a managed supervisor and real Spark.

One `shared` session carries the whole file (a cold Spark start is what this file costs): a text
statement, a %table, a SQL query and a failing statement run through the API while the browser tests
wait for it; a small Python batch runs beside it. The pages are then loaded and read as a user sees
them (states, the output table, the error, the log), a long-running statement is cancelled and the
session deleted by clicking, and the API must show the change. Every page passes axe-core's checks
(no serious or critical violation) and leaves a screenshot under tests/output/web-ui/. Chromium,
chromedriver, Selenium, axe-core (vendored by scripts/install-deps) and Spark missing: the tests fail.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from pathlib import Path

import pytest

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server

AXE_JS = h.ROOT / ".vendor" / "axe-core-4.14.1" / "axe.min.js"
OUTPUT = Path(os.environ.get("LIVY_TEST_OUTPUT", h.ROOT / "tests" / "output")) / "web-ui"
CSP = "default-src 'self'"
UI_FILES = ("index.html", "session.html", "batches.html", "batch.html", "supervisors.html",
            "livy-ui.css", "livy-ui.js", "sessions.js", "session.js", "batches.js", "batch.js",
            "supervisors.js")
STATEMENTS = [  # (kind, code) in id order
    ("pyspark", 'print("hello from the web UI")\n1 + 1'),
    ("pyspark", '%table [{"name": "alice", "n": 1}, {"name": "bob", "n": 2}]'),
    ("sql", "SELECT 'x' AS letter, 42 AS answer"),
    ("pyspark", "undefined_name_for_the_ui"),
]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ui(work_dir, pg, spark_env):
    """The server (LivyUI On, the tree's ui/), one shared session being created and a batch
    submitted; nothing waits for Spark here."""
    jobs = work_dir / "webui-jobs"
    jobs.mkdir(exist_ok=True)
    jobs.chmod(0o755)
    job = jobs / "job.py"
    job.write_text("import time\nprint('batch job says hello', flush=True)\ntime.sleep(2)\n"
                   "print('batch job done', flush=True)\n")
    job.chmod(0o644)
    pg.create_database("webui")
    factory = h.ServerFactory(work_dir, pg, "webui")
    try:
        server = factory(mpm="event", supervisor="managed", dbname="webui",
                         extra_conf=f"LivyUI On\nLivyCsrfProtection On\nLivyBatchAllowedPaths {jobs}\n",
                         supervisor_conf={"check_interval": "200ms", "stop_grace": "4s",
                                          "max_sessions": 4})
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    # CSRF protection is on, so the pages' clicks prove they send X-Requested-By; the tests'
    # own API calls send it too
    server.http.headers["X-Requested-By"] = "test_web_ui"
    client = Client(server, pg, "webui")
    session = client.create(kind="shared", name="ui-demo", conf=dict(FAST_CONF))
    r = server.post("/batches", json={"file": str(job), "name": "ui-batch"})
    assert r.status_code == 201, r.text
    yield {"server": server, "client": client, "sid": session["id"], "bid": r.json()["id"]}
    finish_server(factory)


@pytest.fixture(scope="module")
def static(work_dir, pg):
    """A server without a supervisor, LivyUI On: for what needs no Spark (files, headers)."""
    # the traversal tests' encoded dots: httpd itself refuses them, logging at error level
    yield from h.module_server(work_dir, pg, "webui-static", allow=(r"AH10244: invalid URI path",),
                               extra_conf="LivyUI On\n")


@pytest.fixture(scope="module")
def ran(ui):
    """The session idle with STATEMENTS run (ids 0..3), and the batch ended."""
    client, sid = ui["client"], ui["sid"]
    client.wait_session(sid, "idle")
    outputs = [client.run(sid, code, kind)["output"] for kind, code in STATEMENTS]
    assert outputs[0]["data"]["text/plain"] == "hello from the web UI\n2", outputs[0]
    assert "application/vnd.livy.table.v1+json" in outputs[1]["data"], outputs[1]
    assert "application/json" in outputs[2]["data"], outputs[2]
    assert outputs[3]["status"] == "error" and outputs[3]["ename"] == "NameError", outputs[3]
    h.wait_for(lambda: ui["server"].get(f"/batches/{ui['bid']}").json()["state"]
               in {"success", "dead", "killed"}, 120, "the batch to end")
    return ui


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver (Debian's packages)."""
    missing = [b for b in ("chromium", "chromedriver") if not shutil.which(b)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run scripts/install-deps (Debian packages "
                    "chromium and chromium-driver)", pytrace=False)
    if not AXE_JS.is_file():
        pytest.fail(f"{AXE_JS} is missing: run scripts/install-deps, which vendors axe-core",
                    pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_script_timeout(30)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


# ---------------------------------------------------------------- helpers


def wait_until(driver, predicate, what: str, timeout: float = 30):
    """Waits for predicate(driver) to be truthy (re-tried on stale elements); returns it."""
    from selenium.common.exceptions import StaleElementReferenceException, NoSuchElementException
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = predicate(driver)
            if v:
                return v
        except (StaleElementReferenceException, NoSuchElementException):
            pass
        if time.monotonic() > deadline:
            status = driver.find_elements("id", "status")
            raise AssertionError(f"{what}: not after {timeout}s on {driver.current_url} (status "
                                 f"line: {status[0].text if status else '-'!r})")
        time.sleep(0.2)


def text_of(driver, css: str) -> str:
    return driver.find_element("css selector", css).text


def axe_violations(driver) -> list[dict]:
    """axe-core's serious and critical violations on the page shown (injected by WebDriver, which
    the page's CSP does not restrict)."""
    driver.execute_script(AXE_JS.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations)).catch(e => done({error: String(e)}));")
    assert isinstance(result, list), result
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result if v["impact"] in ("serious", "critical")]


def screenshot(driver, name: str) -> Path:
    """The whole page (not only the window) as OUTPUT/name.png."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}})
    path = OUTPUT / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def check_page(driver, name: str) -> None:
    """Saves a screenshot of the page and asserts that axe finds nothing serious on it."""
    screenshot(driver, name)
    bad = axe_violations(driver)
    assert not bad, f"accessibility violations on {name}: {bad}"


def console_errors(driver) -> list[str]:
    try:
        logs = driver.get_log("browser")
    except Exception:  # noqa: BLE001  (not every driver keeps the console)
        return []
    return [e["message"] for e in logs if e.get("level") == "SEVERE"]


# ---------------------------------------------------------------- HTTP: files, headers, JSON


def test_ui_is_off_by_default_and_answers_404_json(livy_server, clean_db):
    srv = livy_server()
    for path in ("/ui/", "/ui", "/ui/index.html", "/ui/api/supervisors", "/ui/api/sessions"):
        a = h.raw(srv, "GET", path)
        assert a.status == 404, (path, a.status)
        h.assert_json_msg(a)
    assert srv.get("/version").status_code == 200


def test_the_fixed_list_is_the_tree_s_ui_and_what_make_install_installs():
    assert sorted(p.name for p in (h.ROOT / "ui").iterdir()) == sorted(UI_FILES)
    makefile = (h.ROOT / "Makefile.am").read_text()
    listed = re.search(r"^dist_ui_DATA =((?:.*\\\n)*.*)$", makefile, re.M).group(1)
    assert sorted(re.findall(r"ui/([\w.-]+)", listed)) == sorted(UI_FILES)
    engine = (h.ROOT / "engine" / "livy_webui.c").read_text()
    assert sorted(re.findall(r'\{"([\w.-]+)", "[a-z]+/', engine)) == sorted(UI_FILES)


def test_a_missing_ui_directory_is_a_404_json_and_one_error_line(livy_server, clean_db):
    srv = livy_server(extra_conf="LivyUI On\nLivyUIDirectory /nonexistent/ui\n")
    srv.allow_errors(r"web UI file index\.html cannot be read \(LivyUIDirectory /nonexistent/ui\)")
    a = h.raw(srv, "GET", "/ui/")
    assert a.status == 404 and "not installed" in h.assert_json_msg(a)
    assert a.headers["X-Content-Type-Options"] == "nosniff"
    assert srv.get("/ui/api/supervisors").json() == {"now": pytest.approx(time.time() * 1000, abs=60000),
                                                     "supervisors": []}


def test_every_page_is_served_with_security_and_cache_headers(static):
    srv = static
    for name in UI_FILES:
        r = srv.get(f"/ui/{name}")
        assert r.status_code == 200, (name, r.status_code, r.text[:200])
        assert r.content == (h.ROOT / "ui" / name).read_bytes(), name
        ctype = r.headers["Content-Type"]
        want = {"html": "text/html", "css": "text/css", "js": "text/javascript"}[name.rsplit(".", 1)[1]]
        assert ctype.startswith(want), (name, ctype)
        assert r.headers["Content-Security-Policy"].startswith(CSP), r.headers
        assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["ETag"] and r.headers["Last-Modified"], r.headers
        # unchanged file: 304 on either validator
        again = srv.get(f"/ui/{name}", headers={"If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304 and not again.content, (name, again.status_code)
        again = srv.get(f"/ui/{name}", headers={"If-Modified-Since": r.headers["Last-Modified"]})
        assert again.status_code == 304, (name, again.status_code)
        if name.endswith(".html"):  # no inline script: every script is a file of ours
            html = r.text
            assert html.count("<script") == html.count('<script src="'), name
            assert not re.search(r"\son[a-z]+\s*=|javascript:|style=", html, re.I), name
    index = srv.get("/ui/")
    assert index.content == (h.ROOT / "ui" / "index.html").read_bytes()
    head = h.raw(srv, "HEAD", "/ui/session.js")
    assert head.status == 200 and head.body == b"" and head.headers["ETag"]


def test_the_directory_without_its_slash_redirects(static):
    a = h.raw(static, "GET", "/ui?x=1")
    assert a.status == 301
    assert a.headers["Location"] == f"{static.url}/ui/?x=1"


NOT_UI_FILES = [
    "/ui/../etc/passwd", "/ui/%2e%2e/%2e%2e/etc/passwd", "/ui/.htaccess", "/ui/Makefile.am",
    "/ui/index.html~", "/ui/sub/index.html", "/ui/INDEX.HTML", "/ui/index.html/", "/ui/api/",
    "/ui/api/nope", "/ui/%00index.html", "/ui/livy-ui.js%2f..%2f..%2fREADME.md",
]


# ids by number: run-tests' sanitizer pass selects tests by words such as "api" in their ids
@pytest.mark.parametrize("path", NOT_UI_FILES, ids=[f"path{i}" for i in range(len(NOT_UI_FILES))])
def test_nothing_but_the_fixed_files_is_reachable(static, path):
    a = h.raw(static, "GET", path)
    assert a.status in (400, 404), (path, a.status, a.body[:200])
    assert b"root:x:" not in a.body and b"Apache Livy" not in a.body, a.body[:300]


def test_writes_to_the_ui_are_405(static):
    for method in ("POST", "PUT", "DELETE"):
        a = h.raw(static, method, "/ui/index.html", body=b"{}",
                  headers={"Content-Type": "application/json"})
        assert a.status == 405, (method, a.status)
        assert a.headers["Allow"] == "GET, HEAD"
        h.assert_json_msg(a)


def test_writes_without_x_requested_by_are_refused_here(ui):
    """The server of this file protects against CSRF: the pages' cancel and delete below work
    only because they send the header."""
    a = h.raw(ui["server"], "DELETE", f"/sessions/{ui['sid']}")
    assert a.status == 400 and "X-Requested-By" in h.assert_json_msg(a)


def test_supervisors_json_lists_the_managed_supervisor_with_its_counts(ui):
    srv, client = ui["server"], ui["client"]
    client.wait_session(ui["sid"], {"starting", "idle", "busy"})
    r = srv.get("/ui/api/supervisors")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    body = r.json()
    assert list(body) == ["now", "supervisors"], body
    live = [s for s in body["supervisors"] if s["stopped"] is None]
    assert len(live) == 1, body
    sv = live[0]
    assert list(sv) == ["id", "host", "pid", "capacity", "sessions", "batches", "started",
                        "heartbeat", "heartbeatAgeMs", "stopped"], sv
    assert sv["capacity"] == 4 and sv["sessions"] == 1 and sv["pid"] > 0 and sv["host"], sv
    assert 0 <= sv["heartbeatAgeMs"] < 60000 and sv["started"] <= body["now"], sv
    times = srv.get("/ui/api/sessions").json()
    assert [s["id"] for s in times["sessions"]] == [ui["sid"]], times
    assert times["sessions"][0]["created"] <= times["now"], times


# ---------------------------------------------------------------- the browser


def test_sessions_page_lists_the_session_with_its_state(ran, browser):
    srv, sid = ran["server"], ran["sid"]
    browser.get(f"{srv.url}/ui/")
    row = f'tr[data-session="{sid}"]'
    wait_until(browser, lambda d: text_of(d, f"{row} [data-field=state]") == "idle",
               "the session listed as idle")
    cells = [td.text for td in browser.find_elements("css selector", f"{row} td")]
    assert cells[:5] == [str(sid), "ui-demo", "idle", "shared", "—"], cells
    assert cells[7].endswith("s") and cells[8] != "—", cells  # an age and an idle time
    # the filters narrow the page: a state the session is not in hides it
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element("id", "filter-state")).select_by_visible_text("busy")
    wait_until(browser, lambda d: not d.find_elements("css selector", row), "the row filtered out")
    Select(browser.find_element("id", "filter-state")).select_by_visible_text("idle")
    wait_until(browser, lambda d: d.find_elements("css selector", row), "the row back")
    check_page(browser, "sessions")
    assert not console_errors(browser), console_errors(browser)


def test_session_page_shows_statements_outputs_and_the_log(ran, browser):
    srv, sid = ran["server"], ran["sid"]
    browser.get(f"{srv.url}/ui/session.html?id={sid}")
    st = 'tr[data-statement="{}"]'.format
    wait_until(browser, lambda d: len(d.find_elements("css selector", "tr[data-statement]"))
               == len(STATEMENTS), "the statements listed")
    assert "hello from the web UI\n2" in text_of(browser, f"{st(0)} [data-field=output]")
    # %table: a real table with the headers (Livy sorts a dict's keys) and rows
    heads = [th.text for th in browser.find_elements("css selector", f"{st(1)} .output th")]
    assert heads == ["n", "name"], heads
    rows = [[td.text for td in tr.find_elements("css selector", "td")]
            for tr in browser.find_elements("css selector", f"{st(1)} .output tbody tr")]
    assert rows == [["1", "alice"], ["2", "bob"]], rows
    # SQL: the schema's names and the rows
    heads = [th.text for th in browser.find_elements("css selector", f"{st(2)} .output th")]
    assert heads == ["letter", "answer"], heads
    assert [td.text for td in browser.find_elements("css selector", f"{st(2)} .output td")] == ["x", "42"]
    # the failing statement: available, with its error
    assert text_of(browser, f"{st(3)} [data-field=state]") == "available"
    assert "NameError" in text_of(browser, f"{st(3)} [data-field=output]")
    assert "undefined_name_for_the_ui" in text_of(browser, f"{st(3)} pre.code")
    # settings and the log, as the API has them
    assert "shared" in text_of(browser, "#settings")
    api_log = srv.get(f"/sessions/{sid}/log?size=5").json()["log"]
    wait_until(browser, lambda d: api_log[-1] in d.find_element("id", "log").get_attribute("textContent"),
               "the log's last line")
    check_page(browser, "session")
    assert not console_errors(browser), console_errors(browser)


def test_a_running_statement_updates_live_and_cancel_cancels_it(ran, browser):
    srv, client, sid = ran["server"], ran["client"], ran["sid"]
    browser.get(f"{srv.url}/ui/session.html?id={sid}")
    wait_until(browser, lambda d: d.find_elements("css selector", 'tr[data-statement="3"]'),
               "the page loaded")
    # submitted after the page loaded: it must appear, running, without a reload
    stid = client.submit(sid, "while True:\n    pass", "pyspark")["id"]
    row = f'tr[data-statement="{stid}"]'
    wait_until(browser, lambda d: text_of(d, f"{row} [data-field=state]") == "running",
               "the new statement shown running")
    assert browser.find_elements("css selector", f"{row} progress"), "no progress bar while running"
    wait_until(browser, lambda d: "busy" in text_of(d, "#title"), "the session shown busy")
    screenshot(browser, "session-running")
    browser.find_element("css selector", f'{row} button[data-action="cancel"]').click()
    st = client.wait_statement(sid, stid, {"cancelled"}, timeout=60)
    assert st["state"] == "cancelled"
    wait_until(browser, lambda d: text_of(d, f"{row} [data-field=state]") == "cancelled",
               "the statement shown cancelled")
    wait_until(browser, lambda d: not d.find_elements("css selector", f"{row} button"),
               "the cancel button gone")
    client.wait_session(sid, "idle", timeout=60)


def test_supervisors_page_shows_host_capacity_and_heartbeat(ran, browser):
    srv = ran["server"]
    sv = [s for s in srv.get("/ui/api/supervisors").json()["supervisors"] if s["stopped"] is None][0]
    browser.get(f"{srv.url}/ui/supervisors.html")
    row = f'tr[data-supervisor="{sv["id"]}"]'
    wait_until(browser, lambda d: d.find_elements("css selector", row), "the supervisor listed")
    cells = [td.text for td in browser.find_elements("css selector", f"{row} td")]
    assert cells[1] == sv["host"] and cells[3] == "running" and cells[4] == "4" and cells[5] == "1", cells
    assert cells[7].endswith("s") or cells[7].endswith("ms"), cells
    check_page(browser, "supervisors")


def test_batch_pages_show_the_batch_and_its_log(ran, browser):
    srv, bid = ran["server"], ran["bid"]
    state = srv.get(f"/batches/{bid}").json()["state"]
    browser.get(f"{srv.url}/ui/batches.html")
    row = f'tr[data-batch="{bid}"]'
    wait_until(browser, lambda d: text_of(d, f"{row} [data-field=state]") == state, "the batch listed")
    check_page(browser, "batches")
    browser.find_element("css selector", f"{row} a").click()
    wait_until(browser, lambda d: "batch job says hello" in
               d.find_element("id", "log").get_attribute("textContent"), "the batch's log")
    assert state in text_of(browser, "#title")
    check_page(browser, "batch")
    # delete through the page: the API no longer has it
    browser.find_element("id", "delete").click()
    browser.switch_to.alert.accept()
    h.wait_for(lambda: srv.get(f"/batches/{bid}").status_code == 404, 30, "the batch deleted")
    wait_until(browser, lambda d: "gone" in text_of(d, "#status"), "the page saying the batch is gone")


def as_user(driver, user: str | None) -> None:
    """Every request of the browser from now on with Basic credentials of user (None: none)."""
    driver.execute_cdp_cmd("Network.enable", {})
    headers = {}
    if user:
        token = base64.b64encode(f"{user}:{h.password(user)}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


def test_the_pages_show_only_what_the_user_may_view_and_do(ran, browser, livy_server, work_dir):
    """A second server on the same database, with Basic auth and access control: bob is
    admitted only, carol may view. The session (anonymous, so nobody's own) is listed for both;
    its statements and log only for carol; neither may delete it, and it stays."""
    srv, sid = ran["server"], ran["sid"]
    htpasswd = h.write_htpasswd(work_dir / "webui-htpasswd", ["bob", "carol"])
    guarded = livy_server(dbname="webui", extra_conf=h.basic_auth_conf(htpasswd, (
        "LivyUI On\nLivyAccessControl On\nLivyAllowedUsers bob\nLivyViewUsers carol")))
    guarded.allow_errors(*h.AUTH_FAILURE_LINES)
    assert h.request_as(guarded, None, "GET", "/ui/").status_code == 401
    try:
        as_user(browser, "bob")
        browser.get(f"{guarded.url}/ui/session.html?id={sid}")
        wait_until(browser, lambda d: "idle" in text_of(d, "#title"), "the session's state for bob")
        wait_until(browser, lambda d: "may not view" in text_of(d, "#statements [data-denied]"),
                   "the statements refused to bob")
        wait_until(browser, lambda d: "may not view" in text_of(d, "#log"), "the log refused to bob")
        assert not browser.find_elements("css selector", "tr[data-statement]")
        browser.find_element("id", "delete").click()
        browser.switch_to.alert.accept()
        wait_until(browser, lambda d: "may not modify" in text_of(d, "#status"), "the delete refused")
        wait_until(browser, lambda d: d.find_element("id", "delete").is_enabled(),
                   "the delete button usable again")
        screenshot(browser, "session-no-view-access")

        as_user(browser, "carol")
        browser.get(f"{guarded.url}/ui/session.html?id={sid}")
        wait_until(browser, lambda d: len(d.find_elements("css selector", "tr[data-statement]")) >= 4,
                   "the statements shown to carol")
        wait_until(browser, lambda d: "ReplDriver" in text_of(d, "#log"), "the log shown to carol")
        browser.find_element("id", "delete").click()
        browser.switch_to.alert.accept()
        wait_until(browser, lambda d: "may not modify" in text_of(d, "#status"), "the delete refused")
    finally:
        as_user(browser, None)
    assert srv.get(f"/sessions/{sid}").json()["state"] == "idle"


def test_deleting_the_session_from_its_page(ran, browser):
    srv, sid = ran["server"], ran["sid"]
    browser.get(f"{srv.url}/ui/session.html?id={sid}")
    wait_until(browser, lambda d: "idle" in text_of(d, "#title"), "the session shown idle")
    browser.find_element("id", "delete").click()
    browser.switch_to.alert.accept()
    h.wait_for(lambda: srv.get(f"/sessions/{sid}").status_code == 404, 30, "the session deleted")
    wait_until(browser, lambda d: "gone" in text_of(d, "#status"), "the page saying the session is gone")
    screenshot(browser, "session-deleted")
    # its Spark ends: the supervisor's count drops back
    h.wait_for(lambda: [s for s in srv.get("/ui/api/supervisors").json()["supervisors"]
                        if s["stopped"] is None][0]["sessions"] == 0, 60, "the supervisor's count to drop")
