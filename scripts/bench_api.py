"""The body of scripts/bench-api (see there). Uses the integration harness to start servers."""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import livy_harness as h  # noqa: E402

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"code": "1 + 1", "kind": "pyspark"}'
wrk.headers["Content-Type"] = "application/json"
"""

# Appended to every run's script: the figures wrk's own summary lacks (p99.9, and every kind of
# error, zeros included), in microseconds, on one line for us to read.
DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("LIVY-BENCH p50=%d p99=%d p999=%d connect=%d read=%d write=%d timeout=%d status=%d\\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect, e.read, e.write, e.timeout, e.status))
end
"""


def wrk(url, args, connections, script=""):
    """One wrk run: (req/s, p50 ms, p99 ms, p99.9 ms, non-2xx, closed, httpd CPU ms, pg CPU ms).
    closed: connections that ended without an answer to a request sent on them (wrk's read and
    write errors: the server closed a kept-alive connection), plus refused connects and
    timeouts."""
    lua = Path(args.base) / f"run-{abs(hash(script))}.lua"
    lua.write_text(script + DONE_LUA)
    cmd = ["wrk", f"-t{args.threads}", f"-c{connections}", f"-d{args.duration}s", "-s", str(lua)]
    # processes started during the run (httpd children, pooled connections) count in full
    before = [cpu_seconds(pids) for pids in args.watch()] if args.watch else []
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    after = [cpu_seconds(pids) for pids in args.watch()] if args.watch else []
    used = [sum(t - b.get(pid, 0) for pid, t in a.items()) for a, b in zip(after, before)]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    f = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", re.search(r"^LIVY-BENCH .*$", out, re.M).group(0))}
    requests = max(1.0, rps * args.duration)
    per_request = [f"{u * 1000 / requests:.2f}" for u in used] if used else ["?", "?"]
    closed = f["connect"] + f["read"] + f["write"] + f["timeout"]
    args.errors.append(", ".join(f"{k} {f[k]}" for k in ("read", "write", "connect", "timeout")))
    return (rps, f["p50"] / 1000, f["p99"] / 1000, f["p999"] / 1000, f["status"], closed,
            *per_request)


def rss_mb(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pids):
    """User + system CPU time of each process, in seconds."""
    times = {}
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return times


def server_pids(server, pg):
    """httpd's processes, and PostgreSQL's: the postmaster and its children (the backends)."""
    httpd = [p for p in h.all_pids() if str(server.conf_path) in h.process_cmdline(p)]
    postmasters = set(h.pids_mentioning(str(pg.dir)))
    children = []
    for pid in h.all_pids():
        try:
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid in postmasters:
            children.append(pid)
    return httpd, sorted(postmasters) + children


def backends(pg):
    """PostgreSQL's client backends: how many, and their memory (PSS, MiB: shared buffers are
    counted once across them, not once per backend)."""
    postmasters = set(h.pids_mentioning(str(pg.dir)))
    n, pss = 0, 0
    for pid in h.all_pids():
        try:
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            if ppid not in postmasters or "127.0.0.1(" not in h.process_cmdline(pid):
                continue
            n += 1
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return n, pss / 1024


def seed_sessions(server, n):
    def create(_):
        r = server.post("/sessions", json={"kind": "pyspark", "conf": {"spark.ui.enabled": "false"}})
        r.raise_for_status()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(n)))


def seed_listings(server, pg, sid, n_statements):
    """Realistic listing content: n_statements finished statements with outputs in session sid,
    10 log lines in every session, 10,000 batches with 10 log lines each (rows written directly,
    as the supervisor would)."""
    for _ in range(n_statements):
        server.post(f"/sessions/{sid}/statements", json={"code": "spark.range(10).count()", "kind": "pyspark"}).raise_for_status()
    pg.psql(f"UPDATE statements SET state = 'available', progress = 1, started = 1700000000000 + id,"
            f" completed = 1700000000100 + id, output = ('{{\"status\":\"ok\",\"execution_count\":' || id"
            f" || ',\"data\":{{\"text/plain\":\"10\"}}}}')::json"
            f" WHERE session_id = {sid}")
    pg.psql("INSERT INTO session_log (session_id, seq, line) SELECT s.id, g, 'stdout: INFO SparkContext:"
            " line ' || g || ' of the driver log' FROM sessions s, generate_series(0, 9) g;"
            " UPDATE sessions SET next_log_seq = 10")
    pg.psql("INSERT INTO batches (file, owner, state) SELECT '/opt/jobs/etl.py', 'bench', 'running'"
            " FROM generate_series(1, 10000);"
            " INSERT INTO batch_log (batch_id, seq, line) SELECT b.id, g, 'stdout: INFO Client:"
            " line ' || g || ' of spark-submit' FROM batches b, generate_series(0, 9) g;"
            " UPDATE batches SET next_log_seq = 10; ANALYZE")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", default="16,64", metavar="N[,N...]",
                    help="wrk's connections; each request is measured at each count")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mpm", default="event", choices=["event", "prefork"])
    ap.add_argument("--durable", action="store_true",
                    help="PostgreSQL with fsync and synchronous_commit on, as in production (the "
                         "test suite's cluster runs without them)")
    ap.add_argument("--mpm-conf", default="tuned", choices=["tuned", "tests"],
                    help="tuned: the event MPM settings README recommends (\"Tuning the event MPM\"); "
                         "tests: the small ones of the test suite's servers")
    ap.add_argument("--httpd-conf", default="", metavar="DIRECTIVES",
                    help="more httpd configuration, directives separated by ';' "
                         "(e.g. 'LivyDatabasePoolMax 8')")
    ap.add_argument("--only", default="", metavar="REGEX",
                    help="measure only the requests whose name matches REGEX (and the static file)")
    ap.set_defaults(watch=None)  # set once the servers run: their processes, for CPU per request
    args = ap.parse_args()
    counts = [int(c) for c in args.connections.split(",") if c.strip()]

    base = Path(tempfile.mkdtemp(prefix="livy-bench-"))
    args.base = base
    args.errors = []  # wrk's error counts of each run, in order
    os.chmod(base, 0o755)
    pg = h.PgCluster(base, "pg").setup()
    if args.durable:
        h.make_durable(pg)
    static_dir = base / "static"
    static_dir.mkdir()
    extra = (f"LoadModule alias_module {h.HTTPD_MODULES}/mod_alias.so\n"
             f'Alias /static "{static_dir}"\n'
             f'<Directory "{static_dir}">\n    Require all granted\n</Directory>\n'
             "<Location /static>\n    SetHandler none\n</Location>\n" + args.httpd_conf.replace(";", "\n") + "\n")
    mpm_conf = None
    if args.mpm == "event" and args.mpm_conf == "tuned":
        mpm_conf = h.TUNED_EVENT_MPM
    server = h.LivyServer(base, "httpd", pg, mpm=args.mpm, extra_conf=extra, log_level="warn",
                          mpm_conf=mpm_conf)
    try:
        server.start()
        seed_sessions(server, 1000)
        sid = server.get("/sessions?from=0&size=1").json()["sessions"][0]["id"]
        for _ in range(10):
            server.post(f"/sessions/{sid}/statements", json={"code": "1 + 1", "kind": "pyspark"}).raise_for_status()
        session_json = server.get(f"/sessions/{sid}").content
        (static_dir / "session.json").write_bytes(session_json)

        print(f"mod_livy API benchmark: {args.mpm} MPM ({args.mpm_conf if args.mpm == 'event' else 'tests'}"
              f" settings), wrk -t{args.threads} -c{'/'.join(map(str, counts))} -d{args.duration}s, "
              f"{os.cpu_count()} cores, PostgreSQL on the same machine "
              f"{'(durable: fsync, synchronous_commit on)' if args.durable else '(without fsync)'}")
        print(f"session JSON: {len(session_json)} bytes\n")
        backends_before = backends(pg)
        rows = []
        statics = {}

        def measure(name, path, script=""):
            if re.search(args.only, name):
                for c in counts:
                    rows.append((name, c, wrk(f"{server.url}{path}", args, c, script)))

        args.watch = lambda: server_pids(server, pg)
        for c in counts:
            statics[c] = wrk(f"{server.url}/static/session.json", args, c)
            rows.append(("static file (same size)", c, statics[c]))
        measure(f"GET /sessions/{sid}", f"/sessions/{sid}")
        measure(f"GET /sessions/{sid}/statements/0", f"/sessions/{sid}/statements/0")
        measure("GET /sessions?size=100 (1,000 stored)", "/sessions?size=100")
        measure(f"POST /sessions/{sid}/statements", f"/sessions/{sid}/statements", POST_LUA)
        if re.search(args.only, "GET /sessions?size=100 (10,000 stored) GET /batches"):
            seed_sessions(server, 9000)
            measure("GET /sessions?size=100 (10,000 stored)", "/sessions?size=100")
            sid2 = server.get("/sessions?from=1&size=1").json()["sessions"][0]["id"]
            seed_listings(server, pg, sid2, 100)
            measure("GET /sessions?size=100 (+10 log lines each)", "/sessions?from=0&size=100")
            measure(f"GET /sessions/{sid2}/statements (100 stored)", f"/sessions/{sid2}/statements")
            measure("GET /batches?size=100 (10,000 stored)", "/batches?size=100")
        backends_after = backends(pg)

        print("latency in ms; closed: connections that ended without an answer (the server closed "
              "them), refused or timed out;\nCPU: milliseconds of CPU time httpd and PostgreSQL "
              "spent per answered request (steadier than req/s on a busy machine)\n")
        print(f"{'request':44} {'conns':>5} {'req/s':>8} {'p50':>7} {'p99':>7} {'p99.9':>7} "
              f"{'vs static':>9} {'non-2xx':>7} {'closed':>6} {'httpd ms':>8} {'pg ms':>6}")
        for name, c, (rps, p50, p99, p999, bad, closed, cpu_httpd, cpu_pg) in rows:
            print(f"{name:44} {c:5d} {rps:8.0f} {p50:7.2f} {p99:7.2f} {p999:7.2f} "
                  f"{rps / statics[c][0]:9.2f} {bad:7d} {closed:6d} {cpu_httpd:>8} {cpu_pg:>6}")
        details = [f"  {name} at {c}: {errors}" for (name, c, r), errors in zip(rows, args.errors) if r[5]]
        if details:
            print("\nwrk's errors where connections ended without an answer (read/write: the server "
                  "closed a connection a request was sent on):\n" + "\n".join(details))
        httpd_pids = [p for p in h.all_pids() if str(server.conf_path) in h.process_cmdline(p)]
        pg_pids = h.pids_mentioning(str(pg.dir))
        print(f"\nmemory (RSS): httpd {rss_mb(httpd_pids):.0f} MiB in {len(httpd_pids)} processes")
        print(f"PostgreSQL client backends: {backends_before[0]} ({backends_before[1]:.0f} MiB PSS) "
              f"before the runs, {backends_after[0]} ({backends_after[1]:.0f} MiB PSS) after")
        stmts = server.get(f"/sessions/{sid}/statements?size=0").json()["total_statements"]
        print(f"statements stored in session {sid} after the POST run: {stmts}")
    finally:
        server.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
