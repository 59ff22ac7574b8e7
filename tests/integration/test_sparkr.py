"""sparkr sessions: R statements through httpd, run by an R process the session's REPL starts
(Debian's r-base-core), as a Livy client sees them.

pip's pyspark has no SparkR package, and no package registry here carries one: SparkR's entry
points then say what to install, which one test checks. The test that uses SparkR itself runs
when a Spark distribution's R package is there (SPARK_HOME/R/lib/SparkR, or pyspark's own
directory), and is skipped otherwise, saying why. One sparkr session carries the tests in file
order.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import livy_harness as h
from livy_client import FAST_CONF, Client, finish_server, start_server

DBNAME = "sparkr"


@pytest.fixture(scope="module")
def rs(work_dir, pg, spark_env):
    if not shutil.which("R"):
        pytest.fail("R is not installed: run scripts/install-deps (it installs r-base-core)",
                    pytrace=False)
    factory, server = start_server(work_dir, pg, DBNAME, DBNAME, "event",
                                   {"check_interval": "200ms", "stop_grace": "4s"})
    yield Client(server, pg, DBNAME)
    finish_server(factory)


@pytest.fixture(autouse=True)
def checked_error_log(rs):
    yield from h.error_log_checked(rs.server)


@pytest.fixture(scope="module")
def sid(rs):
    s = rs.create(kind="sparkr", conf=FAST_CONF)
    assert s["kind"] == "sparkr", s
    rs.wait_session(s["id"], "idle")
    return s["id"]


def r_text(c: Client, sid: int, code: str) -> str:
    out = c.run(sid, code, kind=None)["output"]
    assert out["status"] == "ok", out
    return out["data"]["text/plain"]


def sparkr_installed() -> Path | None:
    homes = [os.environ.get("SPARK_HOME"), str(h.pyspark_dir())]
    for home in filter(None, homes):
        if (Path(home) / "R" / "lib" / "SparkR").is_dir():
            return Path(home) / "R" / "lib"
    return None


def test_values_print_as_at_rs_prompt(rs, sid):
    assert r_text(rs, sid, "x <- c(1, 2, 3)\nmean(x)") == "[1] 2"
    assert r_text(rs, sid, "invisible(7)") == ""


def test_printed_lines_and_messages_come_in_order(rs, sid):
    assert r_text(rs, sid, 'cat("first\\n"); message("second"); 1 + 1') == "first\nsecond\n[1] 2"


def test_globals_live_across_statements(rs, sid):
    r_text(rs, sid, "y <- 10")
    assert r_text(rs, sid, "y * 2") == "[1] 20"


def test_an_error_is_an_error_output(rs, sid):
    out = rs.run(sid, 'f <- function() stop("boom")\nf()', kind=None)["output"]
    assert out["status"] == "error" and out["ename"] == "Error", out
    assert out["evalue"] == "Error in f() : boom", out
    assert out["traceback"] and "boom" in out["traceback"][-1], out
    out = rs.run(sid, "1 +", kind=None)["output"]
    assert out["status"] == "error" and "unexpected end of input" in out["evalue"], out


def test_utf8_round_trips(rs, sid):
    assert r_text(rs, sid, 'print("ünïcödé ✓")') == '[1] "ünïcödé ✓"'


def test_r_runs_inside_the_sessions_isolation(rs, sid):
    # the REPL's private /tmp: what R writes there is the session's alone (and this statement
    # starts R if no test before did)
    assert r_text(rs, sid, 'writeLines("mine", file.path(tempdir(), "x")); '
                           'startsWith(tempdir(), Sys.getenv("TMPDIR"))') == "[1] TRUE"
    members = h.session_members(rs.repl_pid(sid))
    r = [p for p in members if "livy-r-driver-" in h.process_cmdline(p)]
    assert len(r) == 1, [(p, h.process_cmdline(p)[:100]) for p in members]
    if h.IS_ROOT:
        assert Path(f"/proc/{r[0]}").stat().st_uid == h.pwd.getpwnam(h.REPL_USER).pw_uid


def test_cancel_interrupts_r_and_the_session_goes_on(rs, sid):
    st = rs.submit(sid, "Sys.sleep(600)", kind=None)
    rs.wait_statement(sid, st["id"], "running")
    rs.cancel(sid, st["id"])
    done = rs.wait_statement(sid, st["id"], "cancelled", timeout=60)
    assert done["state"] == "cancelled", done
    assert r_text(rs, sid, "y + 1") == "[1] 11"  # the same R process, its globals intact


def test_sparkr_without_the_package_says_what_to_install(rs, sid):
    if sparkr_installed():
        pytest.skip("SparkR is installed here: test_sparkr_uses_the_sessions_spark covers it")
    out = rs.run(sid, 'sql("SELECT 1")', kind=None)["output"]
    assert out["status"] == "error", out
    assert "SparkR is not installed" in out["evalue"] and "R/lib/SparkR" in out["evalue"], out


def test_sparkr_uses_the_sessions_spark(rs, sid):
    if not sparkr_installed():
        pytest.skip("SparkR not installed (pip's pyspark has no R package; install a Spark "
                    "distribution's R/pkg as SPARK_HOME/R/lib/SparkR to run this test)")
    assert r_text(rs, sid, 'collect(sql("SELECT 40 + 2 AS answer"))$answer') == "[1] 42"
    # the session's own SparkSession, not one of SparkR's making
    assert r_text(rs, sid, 'startsWith(sparkR.conf("spark.app.name")[[1]], "livy-session-")') == "[1] TRUE"
    df = r_text(rs, sid, "df <- createDataFrame(data.frame(a = 1:3))\ncount(df)")
    assert df == "[1] 3", df
