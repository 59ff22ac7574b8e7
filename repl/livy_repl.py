# REPL child driver for mod_livy: hosts one PySpark SparkSession for one interactive session and
# talks to the supervisor over a Unix socket, as described in docs/repl-protocol.md.
"""The REPL child of one mod_livy interactive session.

Run by the supervisor (see docs/repl-protocol.md)::

    python livy_repl.py --session-id N --socket SESSION_DIR/repl.sock \\
        --secret-fd 3 --conf-fd 4 --kind KIND

The session's secret arrives on an inherited file descriptor (never in argv or the environment);
every connection must prove it before anything else is read (docs/repl-protocol.md,
"Authentication").

Threads:
  * the main thread starts Spark, then runs statements one at a time (Python signal handlers only
    run there, which is what lets a cancel interrupt user code with KeyboardInterrupt);
  * an acceptor thread hands each connection to a handshake thread; a connection that proves the
    session's secret replaces the current one, anything else is closed without a reply;
  * one reader thread per authenticated connection handles the control ops
    (execute, cancel, ack, complete, hello, shutdown), so a cancel is seen while a statement runs;
  * a reader thread relays the JVM's stdout/stderr as log lines;
  * a progress thread reports the running statement's Spark progress;
  * short-lived threads run a cancel ladder or a completion.

Choices the protocol leaves open:
  * ``execution_count`` is the statement id, as in Livy, whose REPL numbers both alike.
  * Messages are only sent on a connection after its ``hello``; until then log lines are buffered,
    and ``started``/``progress`` are dropped (the ``hello`` answer carries the running statement).
  * The supervisor writes the pid file; ``--pid-file`` makes the child write one itself (for
    running it by hand, where no supervisor does).
  * The conf file may carry ``cancel_kill_after_seconds`` (default 30): when a cancelled statement
    has still not stopped after that long, the statement is reported cancelled, a ``fatal`` says
    the interpreter is stuck, and the child exits so the supervisor can replace it.
  * Output over ``output_max_bytes`` (measured as the UTF-8 JSON of the whole ``output`` object):
    row-shaped data (SQL ``application/json`` and the table mime type) keeps as many leading rows
    as fit; other non-text data (``image/png``, ``%json`` values) is dropped; ``text/plain`` is cut
    and ends with ``[output truncated: N bytes over the limit of M ...]`` saying what was dropped.
    Error outputs keep their ``ename`` and get ``evalue``/``traceback`` cut the same way.
"""

import argparse
import ast
import base64
import builtins
import collections
import ctypes
import datetime
import decimal
import hashlib
import hmac
import io
import json
import math
import numbers
import os
import re
import rlcompleter
import secrets
import shlex
import shutil
import subprocess
import tempfile
import signal
import socket
import sys
import threading
import time
import traceback
import warnings

PROTOCOL_VERSION = 2
AUTH_TIMEOUT_S = 10.0  # a connection that has not proved the secret by then is closed
MAX_AUTH_LINE_BYTES = 4096
MAX_PENDING_HANDSHAKES = 8
LOG_BUFFER_MAX_LINES = 10000
JVM_TAIL_LINES = 40  # JVM output kept for a fatal message
PROGRESS_INTERVAL_S = 0.25
# "started" is sent for a statement still running this long after it began: one that is done by
# then says when it started in its result, and the database is written once, not twice.
STARTED_REPORT_AFTER_S = 0.01
CANCEL_RETRY_INTERVAL_S = 0.5
CANCEL_INTERRUPT_AFTER_S = 1.0
DEFAULT_CANCEL_KILL_AFTER_S = 30.0
SHUTDOWN_FORCE_AFTER_S = 15.0
FATAL_DELIVERY_WAIT_S = 10.0
SOCKET_SEND_TIMEOUT_S = 10.0
REPLACED_CONNECTION_DRAIN_S = 2.0
MAX_CONTROL_LINE_BYTES = 256 * 1024 * 1024
MAX_COMPLETIONS = 500

CODE_FILENAME = "<stdin>"  # what user frames are called in tracebacks, as in Livy
DRIVER_FILENAMES = {__file__, os.path.abspath(__file__)}

KIND_ALIASES = {"python": "pyspark", "scala": "spark", "r": "sparkr"}
# What sessions sharing one driver can run: the Scala interpreter's compiled classes live in the
# driver's one class directory under names every interpreter reuses, and SparkR binds to the
# driver's default session.
SHARED_DRIVER_KINDS = ("pyspark", "sql", "shared")

# The sessions this process serves: one, or several when its driver is shared (an "open" from
# the supervisor adds one). The process exits when the last one closes.
PROCESS_LOCK = threading.Lock()
OPEN_SESSIONS = {}
# What SQL completion offers besides the catalog's names: Spark SQL's common keywords.
SQL_KEYWORDS = (
    "ALTER", "AND", "AS", "ASC", "BETWEEN", "BY", "CACHE", "CASE", "CAST", "CREATE", "CROSS",
    "DATABASE", "DELETE", "DESC", "DESCRIBE", "DISTINCT", "DROP", "ELSE", "END", "EXCEPT",
    "EXISTS", "EXPLAIN", "FALSE", "FROM", "FULL", "FUNCTION", "GROUP", "HAVING", "IN", "INNER",
    "INSERT", "INTERSECT", "INTO", "IS", "JOIN", "LEFT", "LIKE", "LIMIT", "NOT", "NULL", "ON",
    "OR", "ORDER", "OUTER", "OVER", "PARTITION", "RIGHT", "SELECT", "SET", "SHOW", "TABLE",
    "TABLES", "TEMPORARY", "THEN", "TRUE", "UNION", "UPDATE", "USE", "USING", "VALUES", "VIEW",
    "WHEN", "WHERE", "WINDOW", "WITH",
)
TABLE_MIME = "application/vnd.livy.table.v1+json"


def now_ms():
    return int(time.time() * 1000)


def encode_message(obj):
    """One protocol line. allow_nan=False because NaN is not JSON and would break the supervisor's
    parser; 'replace' because lone surrogates in user strings cannot be encoded as UTF-8."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8", "replace")


def encoded_size(obj):
    return len(encode_message(obj)) - 1


# ---------------------------------------------------------------------------------------------
# R (kind sparkr): an R process per session, driven over its stdin and stdout
# ---------------------------------------------------------------------------------------------

# The loop R runs. A request is one line, "<id> <code in hex>"; R evaluates each expression in
# the global environment (printing visible values, as at its prompt), with its output and
# messages captured, and answers one line, "LIVY-R <id> ok|error|interrupted <output in hex>
# <error message in hex>". SIGINT interrupts the running code (and is ignored between requests).
R_DRIVER = r"""
.livy_unhex <- function(h) {
  if (!nzchar(h)) return("")
  bytes <- as.raw(strtoi(substring(h, seq(1, nchar(h), 2), seq(2, nchar(h), 2)), 16L))
  text <- rawToChar(bytes)
  Encoding(text) <- "UTF-8"
  text
}
.livy_hex <- function(s) paste(as.character(charToRaw(enc2utf8(s))), collapse = "")
.livy_eval <- function(code) {
  out <- character()
  con <- textConnection("out", "w", local = TRUE)
  sink(con)
  sink(con, type = "message")
  status <- "ok"
  message <- ""
  tryCatch({
    for (e in parse(text = code, keep.source = FALSE)) {
      v <- withVisible(eval(e, envir = .GlobalEnv))
      if (v$visible) print(v$value)
    }
  }, error = function(e) {
    status <<- "error"
    call <- conditionCall(e)
    # as R's prompt says it; this loop's own eval and parse are the top level
    top <- is.null(call) || identical(call[[1]], quote(eval)) || identical(call[[1]], quote(parse))
    message <<- if (top) paste0("Error: ", conditionMessage(e)) else
      paste0("Error in ", paste(deparse(call), collapse = " "), " : ", conditionMessage(e))
  }, interrupt = function(e) {
    status <<- "interrupted"
    message <<- "interrupted"
  })
  sink(type = "message")
  sink()
  close(con)
  list(status = status, out = paste(out, collapse = "
"), message = message)
}
.livy_in <- file("stdin", "r")
repeat {
  line <- tryCatch(readLines(.livy_in, n = 1), interrupt = function(e) NA)
  if (length(line) == 0) break
  if (is.na(line)) next
  space <- regexpr(" ", line, fixed = TRUE)
  id <- if (space > 0) substr(line, 1, space - 1) else line
  code <- if (space > 0) .livy_unhex(substr(line, space + 1, nchar(line))) else ""
  r <- .livy_eval(code)
  cat("LIVY-R", id, r$status, .livy_hex(r$out), .livy_hex(r$message), "\n")
  flush(stdout())
}
"""

# What SparkR's entry points say when no SparkR package is there to attach.
R_WITHOUT_SPARKR = r"""
local({
  why <- paste0("SparkR is not installed on this server: pip's pyspark has no R package. Install ",
                "a Spark distribution's R package (SPARK_HOME/R/lib/SparkR, from Spark's R/pkg) ",
                "on the supervisor's host and set the supervisor's spark_home; plain R works ",
                "meanwhile.")
  for (name in c("sparkR.session", "sparkR.init", "sql", "createDataFrame", "as.DataFrame",
                 "read.df", "read.json", "read.parquet", "spark.lapply", "collect",
                 "createOrReplaceTempView", "tableToDF")) {
    assign(name, function(...) stop(why, call. = FALSE), envir = globalenv())
  }
})
"""


# ---------------------------------------------------------------------------------------------
# Scala (kind spark): a Scala interpreter (the compiler's IMain) in the driver's own JVM
# ---------------------------------------------------------------------------------------------

# What the session's interpreter compiles for itself once, so that the REPL reaches it through
# py4j: a run that captures the code's console output, an interrupt of the thread that runs it,
# a term's value as JSON (%json, %table), and the compiler's completions, whose API is the one
# part that differs between Scala 2.12 and 2.13 (SCALA_COMPLETERS).
SCALA_HELPER = r"""
package livyrepl
import java.io.{ByteArrayOutputStream, PrintStream}
import scala.tools.nsc.interpreter.IMain
object ScalaRunner {
  @volatile private var running: Thread = null
  def run(intp: IMain, code: String, out: ByteArrayOutputStream): String = {
    val ps = new PrintStream(out, true, "UTF-8")
    val me = Thread.currentThread()
    val loader = me.getContextClassLoader
    running = me
    try Console.withOut(ps) { Console.withErr(ps) { intp.interpret(code).toString } }
    finally { running = null; ps.flush(); me.setContextClassLoader(loader); Thread.interrupted() }
  }
  // A term's value as JSON (an RDD's first 10 elements); null if unbound
  def valueJson(intp: IMain, name: String): String = {
    val value = intp.valueOfTerm(name) match {
      case Some(rdd: org.apache.spark.rdd.RDD[_]) => Some(rdd.take(10))
      case other => other
    }
    value.map { v =>
      val json = org.json4s.Extraction.decompose(v)(org.json4s.DefaultFormats)
      org.json4s.jackson.JsonMethods.compact(org.json4s.jackson.JsonMethods.render(json))
    }.orNull
  }
  def interrupt(): Unit = { val t = running; if (t != null) t.interrupt() }
  def complete(intp: IMain, code: String, cursor: Int): Array[String] = {
    COMPLETER
  }
}
"""
SCALA_COMPLETERS = {
    "2.12": "new scala.tools.nsc.interpreter.PresentationCompilerCompleter(intp)"
            ".complete(code, cursor).candidates.distinct.toArray",
    "2.13": "new scala.tools.nsc.interpreter.shell.ReplCompletion(intp)"
            ".complete(code, cursor).candidates.map(_.name).distinct.toArray",
}

# Bound as in spark-shell and Livy: the session's SparkSession (the one Python and SQL use),
# its SparkContext and SQLContext, and the usual imports. @transient: closures that capture the
# REPL's line objects must not try to serialise them.
SCALA_PRELUDE = """\
@transient val spark = org.apache.spark.sql.SparkSession.builder.getOrCreate()
@transient val sc = spark.sparkContext
@transient val sqlContext = spark.sqlContext
import org.apache.spark.SparkContext._
import spark.implicits._
import spark.sql
import org.apache.spark.sql.functions._
"""

# Scala 2.13 prints definitions as declarations ("val res0: Int = 2", "class P"); Livy's output,
# which clients parse, is the earlier form ("res0: Int = 2", "defined class P").
SCALA_VAL_LINE = re.compile(r"^(?:val|var) (?=[^\s:]+: )")
SCALA_TYPE_LINE = re.compile(r"^(class|object|trait) (\S+)$")
COMPLETION_WAIT_S = 1.0
SCALA_MAGIC = re.compile(r"^%(\w+)(?:[ \t]+(\S*))?[ \t]*$")


def scala_livy_text(text):
    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        match = SCALA_TYPE_LINE.match(body)
        if match:
            line = "defined %s %s%s" % (match.group(1), match.group(2), line[len(body):])
        else:
            line = SCALA_VAL_LINE.sub("", line)
        lines.append(line)
    return "".join(lines)


def scala_error_output(count, text):
    """As Livy reports an interpreter error: ename "Error", evalue the message's first line (the
    compiler's "error: ..." line, or the exception), traceback the other lines."""
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.strip().startswith("error:")), None)
    if first is None:
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return error_output(count, "Error", "error", [])
    evalue = lines[first].strip()
    return error_output(count, "Error", evalue, lines[:first] + lines[first + 1:])


def merge_text_outputs(before, after):
    """Livy's merge of a statement's line outputs: text after text is appended; anything else
    replaces what came before."""
    if "text/plain" in before and "text/plain" in after and len(before) == len(after) == 1:
        return {"text/plain": before["text/plain"] + after["text/plain"]}
    return dict(after)


class ScalaInterpreter:
    """The session's Scala interpreter, created in the driver's JVM on the first Scala statement
    or completion: class-based, its classes written to spark.repl.class.outputDir, which Spark
    serves to executors, so that classes defined in the REPL work in tasks."""

    def __init__(self, driver):
        jvm = driver.sc._jvm
        self.jvm = jvm
        self.row_cap = driver.sql_row_cap
        self.busy = threading.Lock()
        class_dir = driver.scala_class_dir
        if not class_dir:
            raise RuntimeError("spark.repl.class.outputDir is not set for this session's Spark")
        version = str(jvm.scala.util.Properties.versionNumberString())
        self.version = version
        settings = jvm.scala.tools.nsc.Settings()
        settings.processArgumentString(
            "-Yrepl-class-based -Yrepl-outdir %s -usejavacp -nowarn" % shlex.quote(class_dir))
        self.buffer = jvm.java.io.ByteArrayOutputStream()
        self.writer = jvm.java.io.PrintWriter(
            jvm.java.io.OutputStreamWriter(self.buffer, "UTF-8"), True)
        if version.startswith("2.12."):
            # (2.12's JPrintWriter is java.io.PrintWriter)
            self.intp = jvm.scala.tools.nsc.interpreter.IMain(settings, self.writer)
            self.intp.initializeSynchronous()
            helper = SCALA_HELPER.replace("COMPLETER", SCALA_COMPLETERS["2.12"])
        else:
            reporter = jvm.scala.tools.nsc.interpreter.shell.ReplReporterImpl(settings, self.writer)
            self.intp = jvm.scala.tools.nsc.interpreter.IMain(settings, reporter)
            self.intp.initializeCompiler()
            helper = SCALA_HELPER.replace("COMPLETER", SCALA_COMPLETERS["2.13"])
        if not self.intp.compileString(helper):
            raise RuntimeError("the Scala interpreter cannot compile its helper: "
                               + self.take_output())
        runner_class = self.intp.classLoader().loadClass("livyrepl.ScalaRunner$")
        self.runner = runner_class.getField("MODULE$").get(None)
        self.take_output()
        status, out = self.run(SCALA_PRELUDE)
        if status != "Success":
            raise RuntimeError("the Scala interpreter could not bind spark and sc: " + out)

    def take_output(self):
        self.writer.flush()
        text = self.buffer.toString("UTF-8")
        self.buffer.reset()
        return text

    def run(self, code):
        with self.busy:
            status = self.runner.run(self.intp, code, self.buffer)
            return str(status), self.take_output()

    def execute(self, statement):
        """Line by line, as Livy's Scala interpreter runs a statement: a line that is not a whole
        input yet is joined with the next; the first error ends the statement; the lines' text
        outputs are concatenated (a magic's output replaces what came before). Definitions then
        come before their uses in separate compiler runs, which Spark's encoders of classes
        defined in the REPL need."""
        lines = statement.code.strip().split("\n")
        data = {"text/plain": ""}
        pending = None
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            chunk = line if pending is None else pending + "\n" + line
            magic = SCALA_MAGIC.match(chunk.strip()) if pending is None else None
            if magic:
                output = self.execute_magic(statement, magic.group(1), magic.group(2) or "")
                if output["status"] != "ok":
                    return output
                data = merge_text_outputs(data, output["data"])
                continue
            status, out = self.run(chunk)
            if status == "Success":
                pending = None
                data = merge_text_outputs(data, {"text/plain": scala_livy_text(out)})
                continue
            if status == "Incomplete" or not out.strip():
                # not a whole input yet (or only comments, which 2.13 calls an error)
                if not last:
                    pending = chunk
                    continue
                wrapped, _ = self.run("{\n%s\n}" % chunk)
                if wrapped == "Success":
                    break  # only comments: nothing more to run
                if status == "Incomplete":
                    return error_output(statement.id, "Error", "incomplete statement", [])
            return scala_error_output(statement.id, out)
        return ok_output(statement.id, data)

    def execute_magic(self, statement, name, term):
        """%json NAME and %table NAME, as Livy's Scala interpreter has them."""
        if name not in ("json", "table"):
            return error_output(statement.id, "UnknownMagic", "Unknown magic command %s" % name, [])
        try:
            with self.busy:
                text = self.runner.valueJson(self.intp, term)
        except Exception as error:
            return error_output(statement.id, "ValueError",
                                "Failed to convert value into a JSON value: %s" % error, [])
        if text is None:
            return error_output(statement.id, "NameError", "Value %s does not exist" % term, [])
        value = json.loads(text)
        if name == "json":
            return ok_output(statement.id, {"application/json": value})
        try:
            table = build_table(value, self.row_cap)
        except ValueError as error:
            return error_output(statement.id, "TypeError", str(error), [])
        for header in table[TABLE_MIME]["headers"]:
            if header["type"] == "INT_TYPE":
                header["type"] = "BIGINT_TYPE"  # a JSON integer, as Livy's Scala table types it
        return ok_output(statement.id, table)

    def interrupt(self):
        self.runner.interrupt()

    def complete(self, code, cursor):
        # The compiler serves one caller at a time: while a statement runs, no candidates
        if not self.busy.acquire(timeout=COMPLETION_WAIT_S):
            return []
        try:
            return [str(name) for name in self.runner.complete(self.intp, code, cursor)]
        finally:
            self.busy.release()


class RInterpreter:
    """One R process for a session's sparkr statements, started on first use; its globals live
    as long as it does."""

    def __init__(self, driver):
        self.driver = driver
        self.process = None
        self.stderr_reader = None
        self.driver_path = None
        self.counter = 0

    def start(self):
        r = shutil.which("R")
        if r is None:
            raise RuntimeError("R is not installed on the supervisor's host (Debian: apt-get "
                               "install r-base-core)")
        # in TMPDIR: the session's own directory under the supervisor
        fd, path = tempfile.mkstemp(prefix="livy-r-driver-", suffix=".R")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(R_DRIVER)
        self.driver_path = path
        self.process = subprocess.Popen(
            [r, "--vanilla", "--quiet", "--no-echo", "-f", path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, LANG=os.environ.get("LANG", "C.UTF-8")),
        )
        self.stderr_reader = threading.Thread(target=self.relay_stderr, name="r-stderr",
                                              daemon=True)
        self.stderr_reader.start()
        status, _, message = self.run(self.driver.sparkr_setup_code())
        if status != "ok":
            self.driver.log("R: setting up the session failed: %s" % message)

    def relay_stderr(self):
        for raw in iter(self.process.stderr.readline, b""):
            self.driver.log("R: " + raw.decode("utf-8", "replace").rstrip("\n"))

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def run(self, code, statement=None):
        """Runs code in R: (status, output, error message). A KeyboardInterrupt (the cancel
        ladder's) interrupts R, whose answer then comes back as interrupted."""
        if not self.alive():
            self.start()
        self.counter += 1
        request = self.counter
        line = "%d %s\n" % (request, code.encode("utf-8").hex())
        self.process.stdin.write(line.encode("ascii"))
        self.process.stdin.flush()
        interrupted_at = None
        while True:
            try:
                raw = self.process.stdout.readline()
            except KeyboardInterrupt:
                interrupted_at = interrupted_at or time.monotonic()
                try:
                    self.process.send_signal(signal.SIGINT)
                except OSError:
                    pass
                continue
            if not raw:
                code_ = self.process.wait()
                self.process = None
                raise RuntimeError("the session's R process exited (status %s); its variables "
                                   "are lost, the next statement starts a new one" % code_)
            text = raw.decode("utf-8", "replace").rstrip("\n")
            parts = text.split(" ")
            if len(parts) >= 3 and parts[0] == "LIVY-R" and parts[1] == str(request):
                out = bytes.fromhex(parts[3]).decode("utf-8", "replace") if len(parts) > 3 else ""
                msg = bytes.fromhex(parts[4]).decode("utf-8", "replace") if len(parts) > 4 else ""
                return parts[2], out, msg
            self.driver.log("R: " + text)

    def stop(self):
        if self.alive():
            try:
                self.process.stdin.close()
                self.process.wait(5)
            except Exception:
                self.process.kill()
        if self.driver_path:
            try:
                os.unlink(self.driver_path)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# Output shapes
# ---------------------------------------------------------------------------------------------


def ok_output(count, data):
    return {"status": "ok", "execution_count": count, "data": data}


def error_output(count, ename, evalue, traceback_lines):
    return {
        "status": "error",
        "execution_count": count,
        "ename": ename,
        "evalue": evalue,
        "traceback": list(traceback_lines),
    }


def strip_driver_frames(tb):
    """Skips the leading traceback entries that belong to this file, so users see their code."""
    while tb is not None and tb.tb_frame.f_code.co_filename in DRIVER_FILENAMES:
        tb = tb.tb_next
    return tb


def exception_output(count, exc, with_traceback=True):
    tb = strip_driver_frames(exc.__traceback__) if with_traceback else None
    lines = traceback.format_exception(type(exc), exc, tb)
    return error_output(count, type(exc).__name__, str(exc), lines)


def fit_text(text, budget_bytes):
    """The longest prefix of text whose JSON string encoding fits in budget_bytes."""
    if budget_bytes <= 2:
        return ""
    low, high = 0, min(len(text), budget_bytes)  # every character costs at least one byte
    while low < high:
        middle = (low + high + 1) // 2
        if encoded_size(text[:middle]) <= budget_bytes:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def is_row_shaped(value):
    return isinstance(value, dict) and isinstance(value.get("data"), list)


def bound_output(output, limit):
    """Makes output fit in limit bytes of JSON (see the module docstring for the rules).

    A limit smaller than the marker itself still yields the marker: the output can then exceed the
    limit by that much, which beats returning nothing."""
    size = encoded_size(output)
    if limit is None or limit <= 0 or size <= limit:
        return output
    over = size - limit
    if output.get("status") == "error":
        return bound_error_output(output, limit, over)

    output = dict(output, data=dict(output["data"]))
    data = output["data"]
    notes = []
    marker_reserve = 300  # room left for the text marker while trimming rows
    for mime in [m for m in data if m != "text/plain"]:
        value = data[mime]
        if is_row_shaped(value):
            rows = value["data"]
            trimmed = dict(value)
            data[mime] = trimmed

            def fits(row_count):
                trimmed["data"] = rows[:row_count]
                return encoded_size(output) + marker_reserve <= limit

            low, high = 0, len(rows)
            while low < high:
                middle = (low + high + 1) // 2
                if fits(middle):
                    low = middle
                else:
                    high = middle - 1
            trimmed["data"] = rows[:low]
            notes.append("%s shows %d of %d rows" % (mime, low, len(rows)))
        else:
            del data[mime]
            notes.append("%s output of %d bytes omitted" % (mime, encoded_size(value)))
        if encoded_size(output) + marker_reserve <= limit:
            break

    marker = "[output truncated: %d bytes over the limit of %d%s]" % (
        over,
        limit,
        "".join("; " + note for note in notes),
    )
    text = data.get("text/plain", "")
    data["text/plain"] = ""
    room = limit - encoded_size(output) - (encoded_size("\n" + marker) - 2)
    kept = fit_text(text, room + 2)
    data["text/plain"] = kept + "\n" + marker if kept else marker
    return output


def bound_error_output(output, limit, over):
    """Keeps ename, the head of evalue and the leading traceback lines that fit, then a marker
    line. The evalue gets at most half the room so that some traceback survives."""
    marker = "[output truncated: %d bytes over the limit of %d]" % (over, limit)
    evalue = output.get("evalue") or ""
    lines = output.get("traceback") or []
    output = dict(output, evalue="", traceback=[marker + "\n"])
    room = limit - encoded_size(output)
    kept_evalue = fit_text(evalue, room // 2 + 2)
    output["evalue"] = kept_evalue if kept_evalue == evalue else kept_evalue + " " + marker
    room = limit - encoded_size(output)
    kept_lines = []
    for line in lines:
        cost = encoded_size(line) + 1  # the comma
        if cost > room:
            break
        kept_lines.append(line)
        room -= cost
    output["traceback"] = kept_lines + [marker + "\n"]
    return output


# ---------------------------------------------------------------------------------------------
# JSON-safe values for SQL rows and %table
# ---------------------------------------------------------------------------------------------


def json_safe(value):
    """Turns a value from a Spark Row into plain JSON: dates, decimals and the like become
    strings, nested structs become objects, non-finite floats become 'NaN'/'Infinity' strings."""
    from pyspark.sql import Row

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value).replace("inf", "Infinity").replace(
            "nan", "NaN"
        )
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Row):
        if hasattr(value, "__fields__"):
            return {name: json_safe(item) for name, item in zip(value.__fields__, value)}
        return [json_safe(item) for item in value]
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, numbers.Real) and not isinstance(value, decimal.Decimal):
        return json_safe(float(value))
    return str(value)


def table_cell(value):
    """(Livy table type name, JSON value) for one %table cell, with Livy's type names."""
    from pyspark.sql import Row

    if value is None:
        return "NULL_TYPE", None
    if isinstance(value, bool):
        return "BOOLEAN_TYPE", value
    if isinstance(value, numbers.Integral):
        return "INT_TYPE", int(value)
    if isinstance(value, decimal.Decimal):
        return "DECIMAL_TYPE", str(value)
    if isinstance(value, numbers.Real):
        return "DOUBLE_TYPE", json_safe(float(value))
    if isinstance(value, str):
        return "STRING_TYPE", value
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP_TYPE", str(value)
    if isinstance(value, datetime.date):
        return "DATE_TYPE", str(value)
    if isinstance(value, Row) and hasattr(value, "__fields__"):
        value = value.asDict()
    if isinstance(value, (list, tuple)):
        return "ARRAY_TYPE", [table_cell(item)[1] for item in value]
    if isinstance(value, dict):
        return "MAP_TYPE", {str(key): table_cell(item)[1] for key, item in value.items()}
    return "STRING_TYPE", str(value)


def build_table(value, row_cap):
    """Livy's %table: a list of rows (Rows, dicts, lists or scalars) becomes headers + data.
    A DataFrame is accepted too (its first row_cap rows)."""
    from pyspark.sql import DataFrame, Row

    if isinstance(value, DataFrame):
        value = value.take(row_cap)
    if not isinstance(value, (list, tuple)):
        value = [value]
    headers = {}
    data = []
    for row in value:
        if isinstance(row, Row) and hasattr(row, "__fields__"):
            row = row.asDict()
        if isinstance(row, dict):
            cells = sorted(row.items(), key=lambda item: str(item[0]))
        elif isinstance(row, (list, tuple)):
            cells = list(enumerate(row))
        else:
            cells = [(0, row)]
        converted = []
        for name, cell in cells:
            cell_type, cell_value = table_cell(cell)
            header = headers.get(name)
            if header is None:
                headers[name] = {"name": str(name), "type": cell_type}
            elif cell_type != "NULL_TYPE" and header["type"] != cell_type:
                if header["type"] != "NULL_TYPE":
                    raise ValueError(
                        "table rows have different types: column '%s' holds %s and %s"
                        % (name, header["type"], cell_type)
                    )
                header["type"] = cell_type
            converted.append(cell_value)
        data.append(converted)
    ordered = [headers[key] for key in sorted(headers, key=lambda key: (str(type(key)), key))]
    return {TABLE_MIME: {"headers": ordered, "data": data}}


# ---------------------------------------------------------------------------------------------
# Statement output capture
# ---------------------------------------------------------------------------------------------


class StatementStream(io.TextIOBase):
    """Stands in for sys.stdout and sys.stderr for the child's whole life. While a statement runs
    it writes into that statement's buffer (stdout and stderr interleaved in order, as a terminal
    shows them); between statements into the real stream. Being one long-lived object, a logging
    handler created by user code in one statement keeps working in later ones."""

    def __init__(self, real_stream):
        self.real_stream = real_stream
        self.target = real_stream
        # Sessions that share the driver run their statements on threads of their own: each such
        # thread writes into its statement's buffer, whatever the other sessions do.
        self.thread_targets = {}

    def current(self):
        return self.thread_targets.get(threading.get_ident(), self.target)

    def write(self, text):
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "replace")
        try:
            return self.current().write(text)
        except (OSError, ValueError):
            return len(text)  # a closed real stream must not fail user code

    def flush(self):
        try:
            self.current().flush()
        except (OSError, ValueError):
            pass

    def writable(self):
        return True

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"


# ---------------------------------------------------------------------------------------------
# Python statements
# ---------------------------------------------------------------------------------------------


class UnknownMagic(Exception):
    pass


def parse_python_chunks(code):
    """Livy's rule: code that parses is Python; otherwise lines starting with '%' are magics and
    the runs of other lines between them are Python. Raises SyntaxError if a run does not parse."""
    try:
        return [("python", ast.parse(code, CODE_FILENAME, "exec"))]
    except SyntaxError:
        pass
    chunks = []
    python_lines = []
    for line in code.rstrip().split("\n"):
        if line.startswith("%"):
            if python_lines:
                chunks.append(("python", ast.parse("\n".join(python_lines), CODE_FILENAME)))
                python_lines = []
            name, _, argument = line[1:].partition(" ")
            chunks.append(("magic", name.strip(), argument.strip()))
        else:
            python_lines.append(line)
    if python_lines:
        chunks.append(("python", ast.parse("\n".join(python_lines), CODE_FILENAME)))
    return chunks


def run_python_tree(tree, namespace):
    """All statements but the last in 'exec' mode, the last in 'single' mode so that a bare
    expression echoes its repr (through sys.displayhook, into the captured stdout)."""
    body = tree.body
    for node in body[:-1]:
        exec(compile(ast.Module([node], type_ignores=[]), CODE_FILENAME, "exec"), namespace)
    for node in body[-1:]:
        exec(compile(ast.Interactive([node]), CODE_FILENAME, "single"), namespace)


def eval_magic_argument(argument, namespace, magic):
    if not argument:
        raise UnknownMagic("%%%s needs an expression, e.g. %%%s value" % (magic, magic))
    return eval(compile(argument, CODE_FILENAME, "eval"), namespace)


def magic_json(argument, namespace, driver):
    value = eval_magic_argument(argument, namespace, "json")
    encode_message(value)  # fails here, as the statement's error, if value is not JSON
    return {"application/json": value}


def magic_table(argument, namespace, driver):
    value = eval_magic_argument(argument, namespace, "table")
    return build_table(value, driver.sql_row_cap)


def magic_matplot(argument, namespace, driver):
    value = eval_magic_argument(argument, namespace, "matplot")
    try:
        import matplotlib  # noqa: F401  (only to give a clear error when it is missing)
    except ImportError:
        raise UnknownMagic("%matplot needs matplotlib, which is not installed for this server")
    figure = value.gcf() if hasattr(value, "gcf") else value
    image = io.BytesIO()
    figure.savefig(image, format="png")
    return {"image/png": base64.b64encode(image.getvalue()).decode("ascii"), "text/plain": ""}


MAGICS = {"json": magic_json, "table": magic_table, "matplot": magic_matplot}


# ---------------------------------------------------------------------------------------------
# Connection to the supervisor
# ---------------------------------------------------------------------------------------------


class Statement:
    def __init__(self, statement_id, code, kind):
        self.id = statement_id
        self.code = code
        self.kind = kind
        self.cancel_requested = False
        self.interrupt_sent = False
        self.finished = False
        self.done = threading.Event()
        self.cancel_ladder = None
        self.started_ms = 0  # epoch ms when it began running; 0 if it never ran


class ReplDriver:
    """One session's REPL: its socket, statements, namespace and SparkSession. The first one of
    the process (main) starts Spark; when the driver is shared, the others (guests) are opened
    by the supervisor through a live session and reuse that Spark."""

    def __init__(self, args, secret=None):
        self.session_id = args.session_id
        self.socket_path = args.socket
        self.conf_path = args.conf_file
        self.conf_fd = args.conf_fd
        self.secret = read_secret(args.secret_fd) if secret is None else secret
        self.guest = False  # opened in a running shared driver (not the process's first session)
        self.shared_driver = False  # this process's driver may host other sessions
        self.root_spark = None  # the driver's first SparkSession; guests get newSession()s
        self.closed = False
        self.runner_ident = None  # the thread that runs this session's statements
        self.handshake_slots = threading.BoundedSemaphore(MAX_PENDING_HANDSHAKES)
        self.proxy_user = None
        self.session_kind = KIND_ALIASES.get(args.kind, args.kind)
        self.log_path = args.log_file
        self.pid_path = args.pid_file

        # One reentrant lock guards all state and every socket write, so each message goes out
        # whole and hello's replay is not interleaved with new messages.
        self.lock = threading.RLock()
        self.work_available = threading.Condition(self.lock)
        self.connection = None
        self.connection_live = False  # a hello arrived on the current connection
        self.connection_reader = None
        self.buffered_logs = collections.deque(maxlen=LOG_BUFFER_MAX_LINES)
        self.dropped_log_lines = 0
        self.unacked_results = collections.OrderedDict()
        self.seen_statement_ids = set()
        self.queue = collections.deque()
        self.running = None
        self.state = "starting"
        self.app_id = None
        self.spark_ui_url = None
        self.fatal_message = None
        self.fatal_delivered = threading.Event()
        self.shutdown_requested = False
        self.exiting = False

        self.log_file = None
        self.listener = None
        self.jvm_tail = collections.deque(maxlen=JVM_TAIL_LINES)
        self.jvm_reader = None
        self.gateway = None
        self.sc = None
        self.spark = None
        self.r = None  # the R process of sparkr statements, started on first use
        self.scala = None  # the Scala interpreter of spark statements, created on first use
        self.scala_lock = threading.Lock()
        self.scala_statement = None  # the statement the Scala interpreter runs now
        self.scala_class_dir = None  # spark.repl.class.outputDir
        self.status_tracker = None
        self.namespace = {"__name__": "__main__", "__builtins__": builtins}
        self.armed_statement = None  # the statement a SIGINT may interrupt, if it is cancelled
        self.main_thread_id = threading.main_thread().ident
        self.output_max_bytes = 1048576
        self.sql_row_cap = 1000
        self.cancel_kill_after_s = DEFAULT_CANCEL_KILL_AFTER_S
        self.stdout = StatementStream(sys.stdout)
        self.stderr = StatementStream(sys.stderr)

    # -- logging --------------------------------------------------------------------------------

    def log(self, message):
        self.log_line("%s INFO ReplDriver: %s" % (time.strftime("%y/%m/%d %H:%M:%S"), message))

    def log_line(self, line):
        """Every line goes to the log file; to the supervisor now, or after the next hello."""
        with self.lock:
            if self.log_file is not None:
                try:
                    self.log_file.write(line + "\n")
                    self.log_file.flush()
                except (OSError, ValueError):
                    pass
            if not (self.connection_live and self.send({"type": "log", "line": line})):
                if len(self.buffered_logs) == self.buffered_logs.maxlen:
                    self.dropped_log_lines += 1
                self.buffered_logs.append(line)

    # -- socket -----------------------------------------------------------------------------------

    def send(self, message):
        """Sends one message on the live connection; False (and the connection dropped) if that
        fails. A timed-out send may have written part of a line, so the connection cannot be
        reused: the supervisor reconnects and hello replays what matters."""
        data = encode_message(message)
        with self.lock:
            connection = self.connection
            if connection is None or not self.connection_live:
                return False
            try:
                connection.sendall(data)
                return True
            except OSError:
                self.drop_connection(connection)
                return False

    def drop_connection(self, connection):
        with self.lock:
            if self.connection is connection:
                self.connection = None
                self.connection_live = False
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        connection.close()

    def listen(self):
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)  # left over by a child that died
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # 0660: our account and the group of the session directory (the supervisor's, which
        # makes it setgid) may connect; every connection must still prove the secret.
        old_umask = os.umask(0o117)
        try:
            listener.bind(self.socket_path)
        finally:
            os.umask(old_umask)
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self.accept_loop, name="accept", daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                if self.exiting:
                    return
                time.sleep(0.1)
                continue
            if not self.handshake_slots.acquire(blocking=False):
                self.log("rejected a connection on the REPL socket: %d connections are already "
                         "proving the secret" % MAX_PENDING_HANDSHAKES)
                connection.close()
                continue
            threading.Thread(target=self.handshake, args=(connection,), name="handshake",
                             daemon=True).start()

    def handshake(self, connection):
        try:
            refusal = self.authenticate(connection)
        finally:
            self.handshake_slots.release()
        if refusal is not None:
            self.log("rejected a connection on the REPL socket: %s" % refusal)
            connection.close()  # without a reply
            return
        connection.settimeout(SOCKET_SEND_TIMEOUT_S)
        with self.lock:
            previous, previous_reader = self.connection, self.connection_reader
            self.connection = connection
            self.connection_live = False
            self.connection_reader = threading.Thread(
                target=self.read_loop, args=(connection, previous, previous_reader),
                name="control", daemon=True,
            )
            self.connection_reader.start()
        if previous is not None:
            # A new supervisor connection replaces the old one. Half-close only: what the
            # old supervisor sent before it went (an ack, say) is still read and handled.
            try:
                previous.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def authenticate(self, connection):
        """The REPL's side of the handshake: None when the peer proved the session's secret (and
        has our proof back), else why not."""
        repl_nonce = secrets.token_hex(16)
        deadline = time.monotonic() + AUTH_TIMEOUT_S
        received = b""
        try:
            connection.settimeout(AUTH_TIMEOUT_S)
            connection.sendall(encode_message(
                {"type": "challenge", "protocol": PROTOCOL_VERSION, "nonce": repl_nonce}))
            while b"\n" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                connection.settimeout(remaining)
                chunk = connection.recv(MAX_AUTH_LINE_BYTES)
                if not chunk:
                    return "the peer closed the connection without proving the session's secret"
                received += chunk
                if len(received) > MAX_AUTH_LINE_BYTES:
                    return "a first message longer than %d bytes" % MAX_AUTH_LINE_BYTES
        except socket.timeout:
            return "no proof of the session's secret within %.0f s" % AUTH_TIMEOUT_S
        except OSError as error:
            return "the connection failed during the handshake: %s" % error
        line, rest = received.split(b"\n", 1)
        try:
            message = json.loads(line.decode("utf-8"))
        except ValueError:
            return "a first message that is not JSON"
        if not isinstance(message, dict) or message.get("op") != "auth":
            op = message.get("op") if isinstance(message, dict) else None
            return "a first message that is not a proof of the session's secret (op %.40r)" % (op,)
        if message.get("protocol") != PROTOCOL_VERSION:
            return "protocol %.20r, this REPL speaks %d" % (message.get("protocol"),
                                                             PROTOCOL_VERSION)
        nonce, proof = message.get("nonce"), message.get("proof")
        if not (isinstance(nonce, str) and re.fullmatch(r"[0-9a-f]{32}", nonce)
                and isinstance(proof, str)):
            return "a malformed proof"
        expected = auth_proof(self.secret, "supervisor", self.session_id, repl_nonce, nonce)
        if not hmac.compare_digest(expected, proof):
            return "a wrong proof of the session's secret"
        if rest.strip():
            return "messages sent before the handshake ended"
        try:
            connection.sendall(encode_message(
                {"type": "auth",
                 "proof": auth_proof(self.secret, "repl", self.session_id, repl_nonce, nonce)}))
        except OSError as error:
            return "the connection failed during the handshake: %s" % error
        return None

    def read_loop(self, connection, previous=None, previous_reader=None):
        if previous_reader is not None:
            # Handle the old connection's last messages before this one's hello, so that an ack
            # sent just before a reconnect is not answered by a replay of the acked result.
            previous_reader.join(REPLACED_CONNECTION_DRAIN_S)
            if previous_reader.is_alive():
                self.drop_connection(previous)  # its peer neither talks nor closes: stop waiting
        pending = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except socket.timeout:
                continue  # the timeout exists for sends; reads just wait on
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    self.handle_line(connection, line)
            if len(pending) > MAX_CONTROL_LINE_BYTES:
                self.log("control message longer than %d bytes; dropping the connection"
                         % MAX_CONTROL_LINE_BYTES)
                break
        self.drop_connection(connection)

    def job_group(self, statement_id):
        """The Spark job group of a statement: unique in the driver, whichever session it is."""
        return "%s.%d" % (self.session_id, statement_id) if self.guest else str(statement_id)

    def handle_line(self, connection, line):
        try:
            message = json.loads(line.decode("utf-8"))
            op = message.get("op")
        except (ValueError, AttributeError):
            self.log("ignoring a control message that is not a JSON object: %r" % line[:200])
            return
        try:
            if op == "hello":
                self.on_hello(connection)
            elif op == "execute":
                self.on_execute(message)
            elif op == "cancel":
                self.on_cancel(message)
            elif op == "ack":
                with self.lock:
                    self.unacked_results.pop(message.get("id"), None)
            elif op == "complete":
                threading.Thread(
                    target=self.on_complete, args=(message,), name="complete", daemon=True
                ).start()
            elif op == "shutdown":
                self.begin_shutdown("shutdown requested by the supervisor")
            elif op == "open":
                self.on_open(message)
            else:
                self.log("ignoring unknown control op %r" % (op,))
        except Exception:
            self.log("error handling %r: %s" % (op, traceback.format_exc().rstrip()))

    # -- control ops ----------------------------------------------------------------------------

    def on_hello(self, connection):
        with self.lock:
            if connection is not self.connection:
                return
            self.connection_live = True
            busy = self.running is not None or bool(self.queue)
            state = "starting" if self.state == "starting" else ("busy" if busy else "idle")
            sent = self.send(
                {
                    "type": "hello",
                    "protocol": PROTOCOL_VERSION,
                    "state": state,
                    "app_id": self.app_id,
                    "spark_ui_url": self.spark_ui_url,
                    "running": self.running.id if self.running else None,
                    "queued": [statement.id for statement in self.queue],
                    "unacked": list(self.unacked_results),
                }
            )
            for result in list(self.unacked_results.values()):
                sent = sent and self.send(result)
            if sent and self.dropped_log_lines:
                sent = self.send(
                    {
                        "type": "log",
                        "line": "[%d log lines were dropped while no supervisor was connected]"
                        % self.dropped_log_lines,
                    }
                )
                if sent:
                    self.dropped_log_lines = 0
            while sent and self.buffered_logs:
                sent = self.send({"type": "log", "line": self.buffered_logs[0]})
                if sent:
                    self.buffered_logs.popleft()
            if sent and self.fatal_message is not None:
                if self.send({"type": "fatal", "msg": self.fatal_message}):
                    self.fatal_delivered.set()

    def on_open(self, message):
        """The supervisor opens another session in this shared driver: same owner, proxy user
        and Spark settings (its side checks), its own socket beside ours, secret, namespace and
        SparkSession."""
        session_id = message.get("session")
        socket_path = message.get("socket")
        kind = KIND_ALIASES.get(message.get("kind") or "", message.get("kind"))
        secret_hex = message.get("secret")
        why = None
        if not self.shared_driver:
            why = "this driver is not shared"
        elif self.state != "ready" or self.shutdown_requested:
            why = "this driver is not ready"
        elif not (isinstance(session_id, str) and session_id.isdigit()):
            why = "a malformed session id"
        elif not (isinstance(socket_path, str)
                  and os.path.dirname(socket_path) == os.path.dirname(self.socket_path)
                  and os.path.basename(socket_path) == "repl-%s.sock" % session_id):
            why = "a socket outside this driver's directory"
        elif kind not in SHARED_DRIVER_KINDS:
            why = "kind %.20r cannot share a driver" % (kind,)
        elif not (isinstance(secret_hex, str) and re.fullmatch(r"[0-9a-f]{64,}", secret_hex)):
            why = "a malformed secret"
        if why is not None:
            self.log("refused to open session %.20r in this driver: %s" % (session_id, why))
            return
        with PROCESS_LOCK:
            if session_id in OPEN_SESSIONS:
                return  # open already (a supervisor that sends it again reconnects anyway)
            guest = ReplDriver.opened_from(self, session_id, socket_path, kind,
                                           bytes.fromhex(secret_hex))
            OPEN_SESSIONS[session_id] = guest
        try:
            guest.listen()
        except OSError as error:
            self.log("could not open session %s in this driver: %s" % (session_id, error))
            with PROCESS_LOCK:
                OPEN_SESSIONS.pop(session_id, None)
            return
        threading.Thread(target=guest.progress_loop, name="progress-%s" % session_id,
                         daemon=True).start()
        threading.Thread(target=guest.statement_loop, name="session-%s" % session_id,
                         daemon=True).start()
        self.log("session %s joined this shared driver" % session_id)
        guest.log("REPL for session %s (kind %s) in the shared driver of session %s, listening "
                  "on %s" % (session_id, kind, self.session_id, socket_path))

    @classmethod
    def opened_from(cls, host, session_id, socket_path, kind, secret):
        args = argparse.Namespace(session_id=session_id, socket=socket_path, conf_file=None,
                                  conf_fd=None, secret_fd=None, kind=kind, log_file=None,
                                  pid_file=None)
        guest = cls(args, secret=secret)
        guest.guest = True
        guest.shared_driver = True
        guest.proxy_user = host.proxy_user
        for name in ("gateway", "sc", "status_tracker", "root_spark", "stdout", "stderr",
                     "output_max_bytes", "sql_row_cap", "cancel_kill_after_s", "app_id",
                     "spark_ui_url", "scala_class_dir", "main_thread_id"):
            setattr(guest, name, getattr(host, name))
        guest.spark = host.root_spark.newSession()
        guest.namespace["spark"] = guest.spark
        guest.namespace["sc"] = guest.sc
        guest.add_sql_context()
        guest.state = "ready"
        return guest

    def add_sql_context(self):
        try:
            from pyspark.sql import SQLContext

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.namespace["sqlContext"] = SQLContext(self.sc, self.spark)
        except Exception as error:
            self.log("sqlContext is not available: %s" % error)

    def on_execute(self, message):
        statement_id = message.get("id")
        if not isinstance(statement_id, int):
            self.log("ignoring execute without an integer id: %r" % (message,))
            return
        kind = message.get("kind") or self.session_kind
        statement = Statement(statement_id, message.get("code") or "", KIND_ALIASES.get(kind, kind))
        with self.lock:
            if statement_id in self.seen_statement_ids or self.shutdown_requested:
                return
            self.seen_statement_ids.add(statement_id)
            self.queue.append(statement)
            self.work_available.notify_all()

    def on_cancel(self, message):
        statement_id = message.get("id")
        with self.lock:
            for statement in self.queue:
                if statement.id == statement_id:
                    self.queue.remove(statement)
                    statement.cancel_requested = True
                    self.finish_statement(statement, None)
                    return
            statement = self.running
            if statement is None or statement.id != statement_id:
                return  # finished already, or unknown: nothing to cancel
            statement.cancel_requested = True
            if statement.cancel_ladder is None:
                statement.cancel_ladder = threading.Thread(
                    target=self.run_cancel_ladder, args=(statement,), name="cancel", daemon=True
                )
                statement.cancel_ladder.start()

    def run_cancel_ladder(self, statement):
        """Cancel the statement's Spark jobs, repeatedly (a statement may start new jobs); after
        a second also interrupt the interpreter; past the kill bound, give up on this child."""
        group = self.job_group(statement.id)
        started = time.monotonic()
        first_attempt = True
        while not statement.done.is_set():
            elapsed = time.monotonic() - started
            try:
                # Spark logs a warning for each cancel of a group without active jobs: repeat
                # only when the statement has started new ones.
                if first_attempt or self.group_has_running_jobs(group):
                    self.sc.cancelJobGroup(group)
            except Exception as error:
                self.log("cancelJobGroup(%s) failed: %s" % (group, error))
            first_attempt = False
            if elapsed >= CANCEL_INTERRUPT_AFTER_S and not statement.done.is_set():
                if self.scala_statement is statement:
                    # The JVM thread that runs the Scala code: its sleeps and waits end with
                    # an InterruptedException; the Python thread waiting on py4j stays as it is
                    try:
                        self.scala.interrupt()
                    except Exception as error:
                        self.log("interrupting the Scala interpreter failed: %s" % error)
                else:
                    self.interrupt(statement)
            if elapsed >= self.cancel_kill_after_s:
                self.give_up_on_statement(statement)
                return
            statement.done.wait(CANCEL_RETRY_INTERVAL_S)

    def interrupt(self, statement):
        """KeyboardInterrupt in the statement's user code: a SIGINT when it runs on the main
        thread (it also ends a blocking sleep or read); on a shared driver's other threads an
        asynchronous exception, raised at its next Python instruction."""
        statement.interrupt_sent = True
        if self.runner_ident is None or self.runner_ident == self.main_thread_id:
            try:
                signal.pthread_kill(self.main_thread_id, signal.SIGINT)
            except (OSError, ProcessLookupError):
                pass
            return
        with self.lock:
            if self.armed_statement is not statement or statement.done.is_set():
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.runner_ident),
                                                       ctypes.py_object(KeyboardInterrupt))

    def group_has_running_jobs(self, group):
        tracker = self.status_tracker
        for job_id in tracker.getJobIdsForGroup(group):
            job = tracker.getJobInfo(job_id)
            if job is not None and job.status == "RUNNING":
                return True
        return False

    def give_up_on_statement(self, statement):
        if self.others_open():
            message = ("statement %d did not stop within %.0f s of its cancel; the session "
                       "closes (the shared driver runs on for its other sessions; the statement's "
                       "thread ends with it)" % (statement.id, self.cancel_kill_after_s))
            self.log(message)
            with self.lock:
                if self.running is statement:
                    self.running = None
                self.finish_statement(statement, None)
                self.fatal_message = message
                self.send({"type": "fatal", "msg": message})
                self.shutdown_requested = True
                self.work_available.notify_all()
            self.close()
            return
        message = (
            "statement %d did not stop within %.0f s of its cancel; this REPL exits so that the "
            "session's interpreter can be replaced (its Python variables are lost)"
            % (statement.id, self.cancel_kill_after_s)
        )
        self.log(message)
        with self.lock:
            if self.running is statement:
                self.running = None
            self.finish_statement(statement, None)
        self.die(message, exit_code=3)

    def on_complete(self, message):
        request_id = message.get("id")
        kind = message.get("kind") or self.session_kind
        kind = KIND_ALIASES.get(kind, kind)
        candidates = []
        code = message.get("code") or ""
        cursor = message.get("cursor")
        if not isinstance(cursor, int) or cursor < 0 or cursor > len(code):
            cursor = len(code)
        try:
            if kind == "pyspark":
                candidates = self.complete_python(code[:cursor])
            elif kind == "sql":
                candidates = self.complete_sql(code[:cursor])
            elif kind == "spark" and self.sc is not None and not self.shared_driver:
                candidates = self.scala_interpreter().complete(code, cursor)
        except Exception as error:
            self.log("completion failed: %s" % error)
        self.send({"type": "completion", "id": request_id, "candidates": candidates})

    def complete_python(self, code_before_cursor):
        match = re.search(r"[A-Za-z_][\w.]*$", code_before_cursor)
        if not match:
            return []
        completer = rlcompleter.Completer(dict(self.namespace))
        candidates = []
        for index in range(MAX_COMPLETIONS):
            candidate = completer.complete(match.group(0), index)
            if candidate is None:
                break
            if candidate not in candidates:
                candidates.append(candidate)
        return candidates

    def complete_sql(self, code_before_cursor):
        """Keywords, then the tables and views of the current database (temporary views
        included), that the word before the cursor begins; keywords in the word's case."""
        match = re.search(r"[A-Za-z_][\w]*$", code_before_cursor)
        if not match or self.spark is None:
            return []
        word = match.group(0)
        prefix = word.lower()
        keywords = [k if word[:1].isupper() else k.lower()
                    for k in SQL_KEYWORDS if k.lower().startswith(prefix)]
        tables = sorted({t.name for t in self.spark.catalog.listTables()
                         if t.name.lower().startswith(prefix)})
        return (keywords + tables)[:MAX_COMPLETIONS]

    # -- statements ---------------------------------------------------------------------------

    def finish_statement(self, statement, output):
        """Records and sends the result; kept until acked. Called with the lock held."""
        if statement.finished:
            return
        statement.finished = True
        statement.done.set()
        message = {
            "type": "result",
            "id": statement.id,
            "state": "cancelled" if statement.cancel_requested else "available",
            "output": None if statement.cancel_requested else output,
            "started": statement.started_ms,
            "completed": now_ms(),
        }
        self.unacked_results[statement.id] = message
        self.send(message)
        self.work_available.notify_all()

    def next_statement(self):
        with self.lock:
            while not self.queue and not self.shutdown_requested:
                self.work_available.wait()
            if self.shutdown_requested:
                return None
            statement = self.queue.popleft()
            statement.started_ms = now_ms()
            self.running = statement
            self.work_available.notify_all()  # wakes the progress thread
            return statement

    def run_statement(self, statement):
        output = None
        try:
            if threading.get_ident() == self.main_thread_id:
                install_sigint_handler(self)  # user code may have replaced it
            if self.guest:
                # the JVM's active session is per thread: this session's, for code that asks
                self.sc._jvm.org.apache.spark.sql.SparkSession.setActiveSession(
                    self.spark._jsparkSession)
            self.sc.setJobGroup(
                self.job_group(statement.id), "mod_livy session %s statement %d"
                % (self.session_id, statement.id), interruptOnCancel=True
            )
            output = self.execute(statement)
            output = bound_output(output, self.output_max_bytes)
        except BaseException as error:  # a driver bug, or an interrupt outside user code
            if not statement.cancel_requested:
                self.log("statement %d failed in the driver: %s"
                         % (statement.id, "".join(traceback.format_exception(error)).rstrip()))
            output = error_output(statement.id, "InternalError", str(error) or repr(error), [])
        finally:
            self.release_output()
        if statement.interrupt_sent:
            self.reset_py4j_connection()
        with self.lock:
            if self.running is statement:
                self.running = None
            self.finish_statement(statement, output)

    def reset_py4j_connection(self):
        """A KeyboardInterrupt that lands inside a py4j call leaves this thread's connection with
        an answer still unread; the next call would read it as its own. Close it so py4j opens a
        fresh one."""
        client = getattr(self.gateway, "_gateway_client", None)
        if not hasattr(client, "get_thread_connection"):
            return  # pooled py4j (PYSPARK_PIN_THREAD=false) never reuses an interrupted connection
        try:
            connection = client.get_thread_connection()
            if connection is not None:
                connection.close(reset=True)
        except Exception as error:
            self.log("could not reset the py4j connection: %s" % error)

    def execute(self, statement):
        kind = statement.kind
        if self.shared_driver and kind in ("spark", "sparkr"):
            language = "Scala" if kind == "spark" else "R"
            return error_output(
                statement.id, "NotSupported",
                "%s statements need a driver of their own: this session shares its driver "
                "(livy.session.sharedDriver)." % language, [])
        if kind == "pyspark":
            return self.execute_python(statement)
        if kind == "sql":
            return self.execute_sql(statement)
        if kind == "sparkr":
            return self.execute_r(statement)
        if kind == "spark":
            return self.execute_scala(statement)
        return error_output(
            statement.id, "UnknownKind", "Unknown statement kind %r." % (kind,), []
        )

    def capture_output(self):
        buffer = io.StringIO()
        if self.guest:
            self.stdout.thread_targets[threading.get_ident()] = buffer
            self.stderr.thread_targets[threading.get_ident()] = buffer
        else:
            self.stdout.target = buffer
            self.stderr.target = buffer
        return buffer

    def release_output(self):
        if self.guest:
            self.stdout.thread_targets.pop(threading.get_ident(), None)
            self.stderr.thread_targets.pop(threading.get_ident(), None)
        else:
            self.stdout.target = self.stdout.real_stream
            self.stderr.target = self.stderr.real_stream

    def execute_python(self, statement):
        buffer = self.capture_output()
        try:
            chunks = parse_python_chunks(statement.code)
        except SyntaxError as error:
            return exception_output(statement.id, error, with_traceback=False)
        data = {}
        try:
            self.armed_statement = statement
            try:
                for chunk in chunks:
                    data = {}
                    if chunk[0] == "python":
                        run_python_tree(chunk[1], self.namespace)
                    else:
                        _, name, argument = chunk
                        if not name:
                            raise UnknownMagic("magic command not specified")
                        if name not in MAGICS:
                            raise UnknownMagic("unknown magic command '%s'" % name)
                        data = MAGICS[name](argument, self.namespace, self)
            finally:
                self.armed_statement = None
        except UnknownMagic as error:
            return error_output(statement.id, "UnknownMagic", str(error),
                                ["UnknownMagic: %s\n" % error])
        except BaseException as error:  # user code may raise anything, SystemExit included
            return exception_output(statement.id, error)
        text = (data.pop("text/plain", "") + buffer.getvalue()).rstrip()
        if text or not data:
            data["text/plain"] = text
        return ok_output(statement.id, data)

    def scala_interpreter(self):
        with self.scala_lock:
            if self.scala is None:
                started = time.monotonic()
                self.scala = ScalaInterpreter(self)
                self.log("Scala %s interpreter ready in %.1f s"
                         % (self.scala.version, time.monotonic() - started))
            return self.scala

    def execute_scala(self, statement):
        self.capture_output()  # py4j's and Spark's Python warnings belong to the statement
        try:
            scala = self.scala_interpreter()
        except Exception as error:
            self.log("the Scala interpreter is not available: %s" % error)
            return error_output(statement.id, "InterpreterNotAvailable",
                                "The Scala interpreter could not start: %s" % error, [])
        self.scala_statement = statement
        try:
            return scala.execute(statement)
        finally:
            self.scala_statement = None

    def execute_r(self, statement):
        try:
            if self.r is None:
                self.r = RInterpreter(self)
            # armed: the cancel ladder's SIGINT raises KeyboardInterrupt in run(), which passes
            # it on to R
            self.armed_statement = statement
            try:
                status, out, message = self.r.run(statement.code, statement)
            finally:
                self.armed_statement = None
        except Exception as error:
            return error_output(statement.id, "Error", str(error), [])
        if status == "ok":
            return ok_output(statement.id, {"text/plain": out.rstrip()})
        if status == "interrupted":
            return error_output(statement.id, "Error", "interrupted", [])
        lines = ([out + "\n"] if out.strip() else []) + [message + "\n"]
        return error_output(statement.id, "Error", message, lines)

    def sparkr_setup_code(self):
        """What a new R process runs first: SparkR attached to this driver's JVM when a Spark
        distribution's R package is there, else stubs that say what to install."""
        lib = self.sparkr_lib()
        if lib is None:
            return R_WITHOUT_SPARKR
        port, secret = self.start_r_backend()
        return ("Sys.setenv(EXISTING_SPARKR_BACKEND_PORT = '%d', SPARKR_BACKEND_AUTH_SECRET = '%s')\n"
                "suppressPackageStartupMessages(library(SparkR, lib.loc = '%s'))\n"
                "invisible(sparkR.session())\n" % (port, secret, lib.replace("'", "\\'")))

    def sparkr_lib(self):
        home = os.environ.get("SPARK_HOME")
        if not home:
            try:
                import pyspark
                home = os.path.dirname(pyspark.__file__)
            except ImportError:
                return None
        lib = os.path.join(home, "R", "lib")
        return lib if os.path.isdir(os.path.join(lib, "SparkR")) else None

    def start_r_backend(self):
        """SparkR's backend in this driver's JVM (as sparkR.session starts one with
        EXISTING_SPARKR_BACKEND_PORT): its port and secret; it serves on a thread of its own."""
        backend = self.gateway.jvm.org.apache.spark.api.r.RBackend()
        started = backend.init()
        port, secret = started._1(), started._2().secret()
        threading.Thread(target=backend.run, name="sparkr-backend", daemon=True).start()
        return port, secret

    def execute_sql(self, statement):
        self.capture_output()  # Spark's Python warnings belong to the statement, not the log
        try:
            self.armed_statement = statement
            try:
                frame = self.spark.sql(statement.code)
                rows = frame.take(self.sql_row_cap)
                schema = json.loads(frame.schema.json())
            finally:
                self.armed_statement = None
        except BaseException as error:
            lines = traceback.format_exception_only(type(error), error)
            return error_output(statement.id, type(error).__name__, str(error), lines)
        data = [[json_safe(value) for value in row] for row in rows]
        return ok_output(statement.id, {"application/json": {"schema": schema, "data": data}})

    # -- progress -----------------------------------------------------------------------------

    def progress_loop(self):
        while not self.exiting:
            with self.lock:
                while self.running is None and not self.exiting:
                    self.work_available.wait()
                statement = self.running
            if statement is None:
                continue
            if statement.done.wait(STARTED_REPORT_AFTER_S):
                continue
            self.send({"type": "started", "id": statement.id, "started": statement.started_ms})
            last_sent = 0.0
            while not statement.done.wait(PROGRESS_INTERVAL_S):
                progress = self.statement_progress(statement.id)
                if progress is not None and abs(progress - last_sent) > 1e-6:
                    if statement.done.is_set():
                        break
                    last_sent = progress
                    self.send({"type": "progress", "id": statement.id, "progress": progress})

    def statement_progress(self, statement_id):
        """Livy's formula: completed tasks / tasks over every stage of the statement's jobs."""
        try:
            tracker = self.status_tracker
            total = completed = 0
            for job_id in tracker.getJobIdsForGroup(self.job_group(statement_id)):
                job = tracker.getJobInfo(job_id)
                if job is None:
                    continue
                for stage_id in job.stageIds:
                    stage = tracker.getStageInfo(stage_id)
                    if stage is not None:
                        total += stage.numTasks
                        completed += stage.numCompletedTasks
            return round(completed / total, 4) if total else 0.0
        except Exception:
            return None

    # -- Spark --------------------------------------------------------------------------------

    def read_conf(self):
        if self.conf_fd is not None:
            with os.fdopen(self.conf_fd, encoding="utf-8") as conf_file:
                conf = json.load(conf_file)
        else:
            with open(self.conf_path, encoding="utf-8") as conf_file:
                conf = json.load(conf_file)
        if isinstance(conf.get("output_max_bytes"), int):
            self.output_max_bytes = conf["output_max_bytes"]
        if isinstance(conf.get("sql_row_cap"), int) and conf["sql_row_cap"] >= 0:
            self.sql_row_cap = conf["sql_row_cap"]
        if isinstance(conf.get("cancel_kill_after_seconds"), (int, float)):
            self.cancel_kill_after_s = float(conf["cancel_kill_after_seconds"])
        if isinstance(conf.get("proxy_user"), str) and conf["proxy_user"]:
            self.proxy_user = conf["proxy_user"]
        # The driver's doors: the address the UI binds, a fresh RPC secret (local masters), and
        # whether executors elsewhere must reach the driver (cluster masters).
        local_ip = conf.get("spark_local_ip")
        self.spark_local_ip = local_ip if isinstance(local_ip, str) and local_ip else None
        self.generate_auth_secret = conf.get("generate_auth_secret") is True
        self.cluster_driver = conf.get("cluster_driver") is True
        self.shared_driver = conf.get("shared_driver") is True
        return {str(key): str(value) for key, value in (conf.get("spark") or {}).items()}

    def relay_jvm_output(self, read_fd):
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            for raw_line in iter_lines(pipe):
                line = raw_line.decode("utf-8", "replace").rstrip("\r\n")
                self.jvm_tail.append(line)
                self.log_line(line)

    def start_spark(self, spark_settings):
        from pyspark import SparkConf, SparkContext
        from pyspark.java_gateway import launch_gateway
        from pyspark.sql import SparkSession

        # Python workers must run the driver's interpreter: a different python3 on PATH may lack
        # pyspark or differ in minor version, which Spark refuses.
        if "PYSPARK_PYTHON" not in os.environ and "spark.pyspark.python" not in spark_settings:
            os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ.setdefault("MPLBACKEND", "Agg")  # %matplot renders without a display
        if self.spark_local_ip:
            # Spark's web UI binds to SPARK_LOCAL_IP, else to every interface.
            os.environ["SPARK_LOCAL_IP"] = self.spark_local_ip
            if self.cluster_driver and not os.environ.get("SPARK_LOCAL_HOSTNAME"):
                # SPARK_LOCAL_IP would also become the address the driver's RPC and block
                # manager listen on and give executors; the host name Spark prefers over it
                # keeps those on the network (spark.driver.host, if set, still wins).
                os.environ["SPARK_LOCAL_HOSTNAME"] = driver_address(spark_settings.get("spark.master"))
        if self.proxy_user:
            # spark-submit's --proxy-user: the driver's work (HDFS, YARN) runs as that user; on a
            # Kerberos cluster the supervisor's own principal must be allowed to impersonate.
            submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS", "pyspark-shell")
            os.environ["PYSPARK_SUBMIT_ARGS"] = ("--proxy-user %s %s"
                                                 % (shlex.quote(self.proxy_user), submit_args))

        conf = SparkConf()
        conf.setAll(list(spark_settings.items()))
        # Where the Scala interpreter writes the classes it compiles; set before the context
        # starts, Spark serves them to executors (spark.repl.class.uri), as spark-shell's do.
        self.scala_class_dir = conf.get("spark.repl.class.outputDir")
        if not self.scala_class_dir:
            self.scala_class_dir = tempfile.mkdtemp(prefix="repl-classes-")
            conf.set("spark.repl.class.outputDir", self.scala_class_dir)
        # The console progress bar redraws one line with carriage returns: as log lines it is
        # noise, and progress reaches the supervisor as messages anyway.
        conf.setIfMissing("spark.ui.showConsoleProgress", "false")
        # Our own pipe rather than popen_kwargs' PIPE: launch_gateway only hands back the Popen on
        # success, and the JVM's error text matters most when it fails.
        read_fd, write_fd = os.pipe()
        self.jvm_reader = threading.Thread(
            target=self.relay_jvm_output, args=(read_fd,), name="jvm-output", daemon=True
        )
        self.jvm_reader.start()
        try:
            self.gateway = launch_gateway(conf, popen_kwargs={"stdout": write_fd,
                                                              "stderr": write_fd})
        finally:
            os.close(write_fd)
        if self.generate_auth_secret:
            # Only now: launch_gateway puts every setting on the JVM's command line, which every
            # local user can read in /proc. The SparkContext gets it through py4j.
            conf.set("spark.authenticate", "true")
            conf.set("spark.authenticate.secret", secrets.token_hex(32))
        self.sc = SparkContext(conf=conf, gateway=self.gateway)
        install_sigint_handler(self)  # SparkContext installed its own, which would kill us
        self.spark = SparkSession.builder.getOrCreate()
        self.root_spark = self.spark
        self.status_tracker = self.sc.statusTracker()
        self.namespace["spark"] = self.spark
        self.namespace["sc"] = self.sc
        self.add_sql_context()

    def startup_failure_message(self, error):
        if self.jvm_reader is not None:
            # the JVM's last words may still be in the pipe; when it exited the reader ends soon
            self.jvm_reader.join(2.0)
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        jvm_output = "\n".join(self.jvm_tail)
        message = "Spark could not start: " + text
        if jvm_output:
            message += "\nJVM output:\n" + jvm_output
        return message

    # -- lifecycle ----------------------------------------------------------------------------

    def write_pid_file(self):
        if not self.pid_path:
            return
        temporary = self.pid_path + ".tmp"
        with open(temporary, "w") as pid_file:
            pid_file.write("%d\n" % os.getpid())
        os.replace(temporary, self.pid_path)

    def remove_files(self):
        for path in (self.socket_path, self.pid_path):
            if not path:
                continue
            try:
                os.unlink(path)
            except OSError:
                pass

    def begin_shutdown(self, reason):
        with self.lock:
            if self.shutdown_requested:
                return
            self.shutdown_requested = True
            self.log(reason)
            for statement in list(self.queue):
                statement.cancel_requested = True
                self.finish_statement(statement, None)
            self.queue.clear()
            running = self.running
            self.work_available.notify_all()
        if running is not None:
            self.on_cancel({"id": running.id})
        threading.Thread(target=self.force_exit_later, name="shutdown-watchdog",
                         daemon=True).start()

    def force_exit_later(self):
        time.sleep(SHUTDOWN_FORCE_AFTER_S)
        if self.closed:
            return
        if self.others_open():
            self.log("the running statement did not stop within %.0f s; the session closes "
                     "without it (its thread ends with the shared driver)" % SHUTDOWN_FORCE_AFTER_S)
            self.close()
            return
        self.log("Spark did not stop within %.0f s; exiting anyway" % SHUTDOWN_FORCE_AFTER_S)
        self.exit_now(0)

    def others_open(self):
        with PROCESS_LOCK:
            return any(other is not self for other in OPEN_SESSIONS.values())

    def statement_loop(self):
        """Runs the session's statements until it is shut down, then closes it."""
        self.runner_ident = threading.get_ident()
        while True:
            try:
                statement = self.next_statement()
                if statement is None:
                    break
                self.run_statement(statement)
            except KeyboardInterrupt:
                pass  # a late cancel interrupt; the statement it was for has already ended
            except Exception:
                # a bug in the driver must not take the session's interpreter down with it
                self.log("driver error between statements: %s" % traceback.format_exc().rstrip())
        self.close()

    def close(self):
        """The session ends. The last one of the process stops Spark and exits; another one of a
        shared driver says closed to the supervisor and leaves the driver to the others."""
        with PROCESS_LOCK:
            if self.closed:
                return
            self.closed = True
            OPEN_SESSIONS.pop(self.session_id, None)
            last = not OPEN_SESSIONS
        if last:
            self.log("stopping Spark")
            self.stop_spark()
            self.exit_now(0)
        if self.r is not None:
            self.r.stop()
        self.log("session %s closed; the shared driver runs on" % self.session_id)
        with self.lock:
            self.exiting = True
            self.send({"type": "closed"})
            if self.listener is not None:
                self.listener.close()
            if self.connection is not None:
                self.drop_connection(self.connection)
            self.work_available.notify_all()  # ends the progress thread
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass
        if threading.get_ident() == self.main_thread_id:
            # the process lives while other sessions do; the last one exits it
            threading.Event().wait()

    def stop_spark(self):
        if self.r is not None:
            self.r.stop()
        if self.sc is not None:
            try:
                self.spark.stop()
            except Exception as error:
                self.log("stopping Spark failed: %s" % error)
        process = getattr(self.gateway, "proc", None)
        if process is not None:
            try:
                process.stdin.close()  # the gateway JVM exits when its stdin closes
                process.wait(10)
            except Exception:
                process.kill()

    def die(self, message, exit_code):
        """Sends fatal (waiting a little for a supervisor to connect if none is), then exits."""
        with self.lock:
            self.fatal_message = message
            if self.connection_live and self.send({"type": "fatal", "msg": message}):
                self.fatal_delivered.set()
        self.fatal_delivered.wait(FATAL_DELIVERY_WAIT_S)
        process = getattr(self.gateway, "proc", None)
        if process is not None:
            process.kill()
            try:
                process.wait(10)  # gone before we exit, rather than torn down with our namespace
            except Exception:
                pass
        self.exit_now(exit_code)

    def exit_now(self, exit_code):
        with self.lock:
            self.exiting = True
            if self.listener is not None:
                self.listener.close()
            if self.connection is not None:
                self.drop_connection(self.connection)
            self.remove_files()
            if self.log_file is not None:
                self.log_file.close()
                self.log_file = None
        # os._exit: py4j and Spark leave non-daemon threads and atexit hooks that can hang
        os._exit(exit_code)

    def main(self):
        if self.log_path:
            self.log_file = open(self.log_path, "a", encoding="utf-8")
        else:  # the supervisor points stderr at the session's log file
            self.log_file = os.fdopen(os.dup(2), "w", encoding="utf-8")
        self.listen()
        self.write_pid_file()
        sys.stdout, sys.stderr = self.stdout, self.stderr
        sys.stdin = io.StringIO()  # input() in user code must fail, not block
        install_sigint_handler(self)
        signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(
            target=shut_down_all, args=("SIGTERM received",), daemon=True).start())
        threading.Thread(target=self.progress_loop, name="progress", daemon=True).start()

        with PROCESS_LOCK:
            OPEN_SESSIONS[self.session_id] = self
        self.log("REPL for session %s (kind %s) listening on %s"
                 % (self.session_id, self.session_kind, self.socket_path))
        try:
            spark_settings = self.read_conf()
            started = time.monotonic()
            self.start_spark(spark_settings)
        except BaseException as error:
            message = self.startup_failure_message(error)
            self.log(message)
            self.die(message, exit_code=1)
        with self.lock:
            self.app_id = self.sc.applicationId
            self.spark_ui_url = self.sc.uiWebUrl
            if self.spark_ui_url and self.spark_local_ip:
                # where the UI listens, which a cluster driver's advertised host is not
                self.spark_ui_url = re.sub(r"^(\w+://)[^/]*(:\d+)", r"\g<1>%s\g<2>" % self.spark_local_ip,
                                           self.spark_ui_url)
            self.state = "ready"
            self.log("Spark started in %.1f s: %s %s"
                     % (time.monotonic() - started, self.app_id, self.spark_ui_url))
            self.send({"type": "ready", "app_id": self.app_id, "spark_ui_url": self.spark_ui_url})

        self.statement_loop()


def shut_down_all(reason):
    with PROCESS_LOCK:
        sessions = list(OPEN_SESSIONS.values())
    for session in sessions:
        session.begin_shutdown(reason)


def driver_address(master):
    """The address executors on a cluster reach the driver at: the host name's, as Spark finds
    it, unless that is a loopback address (Debian maps the host name to 127.0.1.1); then that of
    the interface the route to the master (or, for YARN and Kubernetes, off the host) leaves
    by. Connecting a UDP socket sends nothing; it only picks the route."""
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        address = "127.0.0.1"
    if not address.startswith("127."):
        return address
    targets = ["192.0.2.1"]  # TEST-NET-1: any address off the host takes the default route
    m = re.match(r"spark://\[?([^/,\]]+?)\]?(?::\d+)?(?:[,/]|$)", master or "")
    if m:
        targets.insert(0, m.group(1))
    for target in targets:
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(target, 7077, 0, socket.SOCK_DGRAM)[0]
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(sockaddr)
                return probe.getsockname()[0]
        except OSError:
            continue
    return address


def iter_lines(pipe):
    """Lines from an unbuffered binary pipe (the JVM may write partial lines)."""
    pending = b""
    while True:
        chunk = pipe.read(65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def install_sigint_handler(driver):
    """SIGINT is how a cancel reaches running user code. It only raises KeyboardInterrupt while a
    statement that was asked to cancel is executing user code; anywhere else (driver bookkeeping,
    a late signal for a statement that already ended) it is ignored, so it cannot kill the child."""

    def on_sigint(signum, frame):
        statement = driver.armed_statement
        if statement is not None and statement.cancel_requested:
            raise KeyboardInterrupt("statement %d cancelled" % statement.id)

    signal.signal(signal.SIGINT, on_sigint)


def read_secret(fd):
    """The session's secret (hex), read once from an inherited descriptor, which is closed."""
    with os.fdopen(fd, "rb") as secret_file:
        text = secret_file.read(4096).decode("ascii", "replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 32:
        raise SystemExit("livy_repl: the secret on fd %d is not at least 32 bytes of hex" % fd)
    return secret


def auth_proof(secret, role, session_id, repl_nonce, supervisor_nonce):
    """HMAC-SHA256 proof of the secret for one side of one handshake (docs/repl-protocol.md)."""
    message = "livy-repl-auth %d %s %s %s %s" % (PROTOCOL_VERSION, role, session_id, repl_nonce,
                                                 supervisor_nonce)
    return hmac.new(secret, message.encode("ascii"), hashlib.sha256).hexdigest()


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="mod_livy REPL child (docs/repl-protocol.md)")
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--secret-fd", type=int, required=True,
                        help="an inherited descriptor carrying the session's secret (hex)")
    conf = parser.add_mutually_exclusive_group(required=True)
    conf.add_argument("--conf-fd", type=int, help="an inherited descriptor carrying the settings")
    conf.add_argument("--conf-file")
    parser.add_argument("--kind", default="pyspark")
    parser.add_argument("--log-file", help="default: standard error")
    parser.add_argument("--pid-file", help="written when given (the supervisor writes its own)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ReplDriver(parse_arguments(sys.argv[1:])).main()
