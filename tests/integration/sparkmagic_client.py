"""What sparkmagic's Spark (Scala) kernel does against a Livy server, without Jupyter: run in the
sparkmagic venv (.venv-sparkmagic) by test_sparkmagic.py as `python sparkmagic_client.py URL`.

The kernel's session start (POST /sessions with kind spark, polling until idle, then the `spark`
probe that decides which SQL context to use), cells run as sparkmagic's Command runs them, an
error cell, a `%%sql` cell through sparkmagic's SQLQuery (the Scala code it generates, its JSON
lines parsed into a pandas DataFrame), and the session's deletion. Prints one JSON object with
what each step returned; any exception fails the process.
"""

import json
import sys

from sparkmagic.livyclientlib.command import Command
from sparkmagic.livyclientlib.endpoint import Endpoint
from sparkmagic.livyclientlib.sparkcontroller import SparkController
from sparkmagic.livyclientlib.sqlquery import SQLQuery
from sparkmagic.utils.constants import SESSION_KIND_SPARK


class Display:
    """The kernel's IPython display, as text on stderr."""

    def display(self, obj):
        pass

    def html(self, html):
        pass

    def stderr_flush(self):
        pass

    def stdout_flush(self):
        pass

    def write(self, text):
        sys.stderr.write(str(text))

    def writeln(self, text):
        sys.stderr.write(str(text) + "\n")

    send_error = writeln


def main(url):
    controller = SparkController(Display())
    endpoint = Endpoint(url, None)
    properties = {"kind": SESSION_KIND_SPARK, "conf": json.loads(sys.argv[2])}
    controller.add_session("scala", endpoint, False, properties)
    session = controller.get_session_by_name_or_default("scala")
    out = {"session_id": session.id, "status": session.status,
           "sql_context": session.sql_context_variable_name}
    out["count"] = controller.run_command(Command("spark.range(10).count"), "scala")
    out["case_class"] = controller.run_command(Command(
        "case class Reading(sensor: String, value: Double)\n"
        'val readings = Seq(Reading("a", 1.5), Reading("b", 2.5), Reading("a", 3.0)).toDS()\n'
        'readings.createOrReplaceTempView("readings")\n'
        'readings.filter(_.sensor == "a").map(_.value).reduce(_ + _)'), "scala")
    out["error"] = controller.run_command(Command("readings.noSuchMethod()"), "scala")
    frame = controller.run_sqlquery(SQLQuery(
        "SELECT sensor, sum(value) AS total FROM readings GROUP BY sensor ORDER BY sensor",
        maxrows=100), "scala")
    out["sql"] = frame.to_dict("records")
    controller.delete_session_by_name("scala")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
