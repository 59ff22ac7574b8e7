"""The body of scripts/bench-repl (see there). Uses the integration harness to start servers."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import livy_harness as h  # noqa: E402

CODE = "1 + 1"

# The floor: the same statement in a bare local pyspark process with a SparkSession up, no
# server, no socket, no database. Prints one JSON list of per-statement seconds.
FLOOR = r"""
import json, sys, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.master(sys.argv[1]).appName("bench-repl-floor").getOrCreate()
sc = spark.sparkContext
namespace = {"spark": spark, "sc": sc, "__name__": "__main__"}
warmup, n = int(sys.argv[2]), int(sys.argv[3])
code = compile(sys.argv[4], "<stdin>", "eval")
times = []
for i in range(warmup + n):
    t = time.perf_counter()
    value = eval(code, namespace)
    text = repr(value)
    times.append(time.perf_counter() - t)
spark.stop()
print(json.dumps(times[warmup:]))
"""


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def ms(seconds):
    return f"{seconds * 1000:8.3f} ms"


def wait_state(server, sid, states, timeout=600, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        s = server.get(f"/sessions/{sid}").json()
        if s["state"] in states:
            return s
        if s["state"] in ("error", "dead", "killed") or time.monotonic() > deadline:
            log = server.get(f"/sessions/{sid}/log?size=30").json().get("log", [])
            raise SystemExit(f"session {sid} is {s['state']} (wanted {states}):\n" + "\n".join(log))
        time.sleep(interval)


def cold_starts(server, n, conf):
    times = []
    for i in range(n):
        t = time.monotonic()
        r = server.post("/sessions", json={"kind": "pyspark", "conf": conf})
        r.raise_for_status()
        sid = r.json()["id"]
        wait_state(server, sid, {"idle"})
        times.append(time.monotonic() - t)
        server.delete(f"/sessions/{sid}").raise_for_status()
        print(f"  session {sid}: idle after {times[-1]:.2f} s", flush=True)
        time.sleep(2)  # let the deleted session's JVM go before the next cold start
    return times


def warm_ready(pg, dbname):
    rows = pg.psql("SELECT count(*) FROM sessions WHERE warm AND state = 'idle' AND ended_at IS NULL "
                   "AND stop_requested IS NULL", db=dbname)
    return int(rows[0][0]) > 0


def warm_starts(server, pg, dbname, n):
    """n sessions that each take a warm REPL (warm_sessions 1): POST /sessions until the session
    is idle, once a warm REPL is ready; each deleted after, the supervisor starting the next."""
    times = []
    for i in range(n):
        deadline = time.monotonic() + 600
        while not warm_ready(pg, dbname):
            if time.monotonic() > deadline:
                raise SystemExit("no warm REPL became ready within 600 s:\n" + server.log_tail())
            time.sleep(0.1)
        t = time.monotonic()
        r = server.post("/sessions", json={"kind": "pyspark"})
        r.raise_for_status()
        s = r.json()
        if s["state"] != "idle":
            s = wait_state(server, s["id"], {"idle"})
            print(f"  session {s['id']}: started cold", flush=True)
        times.append(time.monotonic() - t)
        server.delete(f"/sessions/{s['id']}").raise_for_status()
    return times


def pss_kib(pid):
    """Proportional set size of one process (shared pages divided among their users), KiB."""
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def session_memory(server, sids):
    """PSS, MiB, of each session's processes: the REPL child and everything in its process
    session (the driver JVM, Python workers)."""
    out = {}
    for sid in sids:
        pid = int((server.run_dir / f"session-{sid}.pid").read_text().strip())
        members = h.session_members(pid)
        out[sid] = (sum(pss_kib(m) for m in members) / 1024, len(members))
    return out


def idle_memory(server, n, conf):
    """n sessions started side by side and left idle: each one's PSS (so that what they share,
    the Python and JVM binaries and libraries, is split among them)."""
    sids = []
    try:
        for _ in range(n):
            r = server.post("/sessions", json={"kind": "pyspark", "conf": conf})
            r.raise_for_status()
            sids.append(r.json()["id"])
        for sid in sids:
            wait_state(server, sid, {"idle"})
        time.sleep(5)  # past the start's garbage: what an idle session keeps
        return session_memory(server, sids)
    finally:
        for sid in sids:
            server.delete(f"/sessions/{sid}")
        time.sleep(3)


def round_trips(server, sid, warmup, n, kind="pyspark"):
    """POST the statement, then GET it as fast as the answers come until it is available."""
    http = requests.Session()
    url = f"{server.url}/sessions/{sid}/statements"
    body = {"code": CODE, "kind": kind}
    expected = "2" if kind == "pyspark" else None
    times, polls, repl_ms, post_ms, dispatch_ms, back_ms = [], [], [], [], [], []
    for i in range(warmup + n):
        wall0 = time.time()
        t = time.perf_counter()
        r = http.post(url, json=body)
        posted = time.perf_counter() - t
        st = r.json()
        k = 0
        while st["state"] != "available":
            st = http.get(f"{url}/{st['id']}").json()
            k += 1
        elapsed = time.perf_counter() - t
        text = st["output"]["data"]["text/plain"]
        assert text == expected if expected else text.endswith(": Int = 2\n"), st
        if i >= warmup:
            times.append(elapsed)
            polls.append(k)
            post_ms.append(posted * 1000)
            # Epoch milliseconds from the REPL against this client's clock (same machine).
            dispatch_ms.append(st["started"] - wall0 * 1000)
            repl_ms.append(st["completed"] - st["started"])
            back_ms.append((wall0 + elapsed) * 1000 - st["completed"])
    http.close()
    return times, polls, {"POST answered": post_ms, "POST sent -> REPL starts it": dispatch_ms,
                          "REPL runs it (started -> completed)": repl_ms,
                          "REPL done -> client sees available": back_ms}


def completions(server, sid, warmup, n):
    """POST .../completion of a name in the session's namespace: the REPL's answer through the
    supervisor and the database, as a client waits for it."""
    http = requests.Session()
    url = f"{server.url}/sessions/{sid}/completion"
    body = {"code": "bench_va", "kind": "pyspark"}
    times = []
    for i in range(warmup + n):
        t = time.perf_counter()
        r = http.post(url, json=body)
        elapsed = time.perf_counter() - t
        assert r.status_code == 200 and r.json()["candidates"] == ["bench_value"], r.text
        if i >= warmup:
            times.append(elapsed)
    http.close()
    return times


def floor(master, warmup, n):
    r = subprocess.run([str(h.VENV_PYTHON), "-c", FLOOR, master, str(warmup), str(n), CODE],
                       capture_output=True, text=True, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise SystemExit(f"the bare pyspark floor failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def shared_memory(server, n, conf):
    """n sessions on one shared driver (livy.session.sharedDriver): the driver's PSS with its
    first session alone, idle after a small job, then with all n, each idle after the same job;
    and each joining session's start (POST /sessions -> idle)."""
    shared = dict(conf, **{"livy.session.sharedDriver": "true"})
    job = "spark.range(1000).selectExpr('sum(id)').collect()[0][0]"
    sids, joins = [], []
    try:
        r = server.post("/sessions", json={"kind": "pyspark", "conf": shared})
        r.raise_for_status()
        sids.append(r.json()["id"])
        wait_state(server, sids[0], {"idle"})
        run_code(server, sids[0], job)
        time.sleep(5)
        one = session_memory(server, sids[:1])[sids[0]][0]
        for _ in range(n - 1):
            t = time.monotonic()
            r = server.post("/sessions", json={"kind": "pyspark", "conf": shared})
            r.raise_for_status()
            sids.append(r.json()["id"])
            wait_state(server, sids[-1], {"idle"}, interval=0.01)
            joins.append(time.monotonic() - t)
        for sid in sids[1:]:
            run_code(server, sid, job)
        apps = {server.get(f"/sessions/{sid}").json()["appId"] for sid in sids}
        time.sleep(5)
        return one, session_memory(server, sids[:1])[sids[0]][0], joins, len(apps)
    finally:
        for sid in sids:
            server.delete(f"/sessions/{sid}")
        time.sleep(3)


def run_code(server, sid, code):
    r = server.post(f"/sessions/{sid}/statements", json={"code": code})
    r.raise_for_status()
    st = r.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = server.get(f"/sessions/{sid}/statements/{st}").json()
        if body["state"] in ("available", "error", "cancelled"):
            if body["state"] != "available" or body["output"]["status"] != "ok":
                raise SystemExit(f"session {sid}: {code!r} failed: {body}")
            return body["output"]
        time.sleep(0.02)
    raise SystemExit(f"session {sid}: {code!r} did not finish within 120 s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=5, help="cold session starts (median reported)")
    ap.add_argument("--statements", type=int, default=300, help="timed statements (>= 200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed statements (and completions) first")
    ap.add_argument("--completions", type=int, default=200, help="timed completion requests")
    ap.add_argument("--idle-sessions", type=int, default=3,
                    help="sessions started side by side to measure an idle session's memory (0: skip)")
    ap.add_argument("--shared-sessions", type=int, default=10,
                    help="sessions on one shared driver, for its memory (0: skip)")
    ap.add_argument("--warm-starts", type=int, default=20,
                    help="sessions created on a server with warm_sessions 1, each once a warm REPL is "
                         "ready (0: skip)")
    ap.add_argument("--mpm", default="event", choices=["event", "prefork"])
    ap.add_argument("--durable", action="store_true",
                    help="PostgreSQL with fsync and synchronous_commit on, as in production (the "
                         "test suite's cluster runs without them)")
    ap.add_argument("--master", default="local[1]", help="spark_master for the sessions and the floor")
    ap.add_argument("--conf", default="{}", help="session conf (JSON) for the sessions, e.g. JVM options")
    args = ap.parse_args()
    conf = json.loads(args.conf)

    base = Path(tempfile.mkdtemp(prefix="livy-bench-repl-"))
    os.chmod(base, 0o755)
    pg = h.PgCluster(base, "pg").setup()
    if args.durable:
        h.make_durable(pg)
    room = max(8, args.shared_sessions + 1)
    server = h.LivyServer(base, "httpd", pg, mpm=args.mpm, supervisor="managed", log_level="warn",
                          supervisor_conf={"spark_master": args.master, "max_sessions": room,
                                           "shared_driver_max_sessions": room})
    try:
        h.check_spark()
        server.start()
        print(f"mod_livy REPL benchmark: {args.mpm} MPM, managed supervisor, spark_master {args.master}, "
              f"{os.cpu_count()} cores, pyspark {h.check_spark()}, session conf {conf or 'default'}, "
              f"PostgreSQL {'durable (fsync, synchronous_commit on)' if args.durable else 'without fsync'}")

        print(f"\ncold session start (POST /sessions -> idle), {args.starts} sequential sessions, each deleted after:")
        starts = cold_starts(server, args.starts, conf)
        print(f"  median {statistics.median(starts):.2f} s  (min {min(starts):.2f} s, max {max(starts):.2f} s)")

        if args.idle_sessions > 0:
            mem = idle_memory(server, args.idle_sessions, conf)
            per = [m for m, _ in mem.values()]
            print(f"\nmemory of idle sessions ({args.idle_sessions} started side by side, PSS of each "
                  f"session's processes: REPL, driver JVM, Python workers):")
            for sid, (m, procs) in mem.items():
                print(f"  session {sid}: {m:7.1f} MiB in {procs} processes")
            mean = statistics.mean(per)
            print(f"  mean {mean:.1f} MiB per idle session, all {args.idle_sessions}: {sum(per):.1f} MiB;"
                  f" idle sessions that fit in 20 GiB: {int(20 * 1024 / mean)}")

        if args.shared_sessions > 1:
            one, alln, joins, apps = shared_memory(server, args.shared_sessions, conf)
            n = args.shared_sessions
            print(f"\nshared driver (livy.session.sharedDriver): {n} sessions in {apps} driver(s), "
                  f"each idle after a small job (PSS of the driver's processes):")
            print(f"  1 session {one:.1f} MiB; {n} sessions {alln:.1f} MiB ({alln / one:.2f}x one; "
                  f"{alln / n:.1f} MiB per session); idle shared sessions that fit in 20 GiB: "
                  f"{int(20 * 1024 / (alln / n))}")
            print(f"  joining session start (POST /sessions -> idle), {len(joins)} sessions: "
                  f"p50 {ms(pct(joins, 50))}   max {ms(max(joins))}")

        r = server.post("/sessions", json={"kind": "pyspark", "conf": conf})
        r.raise_for_status()
        sid = r.json()["id"]
        wait_state(server, sid, {"idle"})
        times, polls, parts = round_trips(server, sid, args.warmup, args.statements)
        r = server.post(f"/sessions/{sid}/statements", json={"code": "bench_value = 1", "kind": "pyspark"})
        r.raise_for_status()
        stid = r.json()["id"]
        while server.get(f"/sessions/{sid}/statements/{stid}").json()["state"] != "available":
            time.sleep(0.01)
        comp_times = completions(server, sid, args.warmup, args.completions)
        # the same statement in Scala, in the same session (its interpreter starts on the first)
        scala_times, scala_polls, scala_parts = round_trips(server, sid, args.warmup, args.statements,
                                                            kind="spark")
        server.delete(f"/sessions/{sid}").raise_for_status()
        print(f"\nstatement round trip for {CODE!r} through httpd (POST, then GET until available, no sleep), "
              f"{len(times)} statements after {args.warmup} untimed:")
        print(f"  p50 {ms(pct(times, 50))}   p90 {ms(pct(times, 90))}   p99 {ms(pct(times, 99))}   "
              f"max {ms(max(times))}")
        print(f"  GETs per statement after the POST: mean {statistics.mean(polls):.1f}")
        print("  where the time goes (p50; the REPL's times are whole milliseconds):")
        for name, values in parts.items():
            print(f"    {name:40} {pct(values, 50):7.1f} ms")

        print(f"\nthe same round trip in Scala (kind spark, {CODE!r} in the session's Scala interpreter), "
              f"{len(scala_times)} statements after {args.warmup} untimed:")
        print(f"  p50 {ms(pct(scala_times, 50))}   p90 {ms(pct(scala_times, 90))}   "
              f"p99 {ms(pct(scala_times, 99))}   max {ms(max(scala_times))}")
        print(f"  GETs per statement after the POST: mean {statistics.mean(scala_polls):.1f}")
        for name, values in scala_parts.items():
            print(f"    {name:40} {pct(values, 50):7.1f} ms")

        print(f"\ncompletion (POST .../completion of a namespace name, answered by the REPL through "
              f"the supervisor), {len(comp_times)} requests after {args.warmup} untimed:")
        print(f"  p50 {ms(pct(comp_times, 50))}   p90 {ms(pct(comp_times, 90))}   "
              f"p99 {ms(pct(comp_times, 99))}   max {ms(max(comp_times))}")

        time.sleep(2)
        base_times = floor(args.master, args.warmup, args.statements)
        print(f"\nfloor: {CODE!r} evaluated in a bare local pyspark process (compiled once, eval + repr "
              f"per statement, SparkSession up), {len(base_times)} statements:")
        print(f"  p50 {ms(pct(base_times, 50))}   p99 {ms(pct(base_times, 99))}")

        overhead = pct(times, 50) - pct(base_times, 50)
        print(f"\nour overhead per statement above the floor: p50 {ms(overhead)}  "
              f"(p99 {ms(pct(times, 99) - pct(base_times, 99))})")

        if args.warm_starts > 0:
            for p in server.stop():
                print(f"warning: {p}", file=sys.stderr)
            pg.create_database("warm")
            server = h.LivyServer(base, "httpd-warm", pg, mpm=args.mpm, supervisor="managed",
                                  log_level="warn", dbname="warm",
                                  supervisor_conf={"spark_master": args.master, "warm_sessions": 1})
            server.start()
            warm = warm_starts(server, pg, "warm", args.warm_starts)
            print(f"\nwarm session start (warm_sessions 1: POST /sessions -> idle once a warm REPL "
                  f"is ready, session deleted after), {len(warm)} sessions:")
            print(f"  p50 {ms(pct(warm, 50))}   p90 {ms(pct(warm, 90))}   p99 {ms(pct(warm, 99))}   "
                  f"max {ms(max(warm))}")
    finally:
        problems = server.stop()
        pg.destroy()
        for p in problems:
            print(f"warning: {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
