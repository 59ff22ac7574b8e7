"""Faults an operator meets (issue 11, "Survive faults"), against a realistic deployment: one
PostgreSQL cluster, two mod_livy nodes on it behind an httpd balancer configured by README.md's
recipe ("Behind a load balancer"), and two standalone supervisors (different host_id) running three
pyspark sessions between them (never more live at once: two cores). Client threads post
statements through the balancer and poll them while the test restarts PostgreSQL five times, keeps
it down for longer than supervisor_dead_after, kills a node, restarts the nodes gracefully, kills a
supervisor and restarts it, and kills a REPL (scenarios 1, 1b, 2, 5, 3, 4, in that order: the
REPL's death ends a session, so it comes last).

Each scenario prints its figures and adds a row to a table printed (and written to a file) at the
end of the module: requests sent, what clients saw go wrong (by HTTP code), statements submitted /
committed / completed, sessions lost. The assertions are real: a session that dies, or a statement
committed (201) that never completes with the right output, fails the scenario; each scenario
collects every broken promise before failing, so one run shows them all.

The sessions are shared by the scenarios (module scope, file order); a scenario that finds a session
dead replaces it first, so one failure does not hide the others.
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

import livy_harness as h
from livy_client import FAST_CONF, Client

DBNAME = "livy"
CLIENT_THREADS = 3
PG_RESTARTS = 5
SUPERVISOR_CONF = {
    "check_interval": "200ms",
    "heartbeat_interval": "1s",
    "supervisor_dead_after": "6s",  # short, so that a stalled supervisor is noticed in the test
    "max_sessions": 2,
    "idle_timeout": "1h",
    "retain_ended": "1h",
    "stop_grace": "4s",
}
DEAD_AFTER_S = 6
LONG_OUTAGE_S = 10
HOSTS = ("faults-a", "faults-b")
LIVE = {"idle", "busy"}
SLEEPY = "import time; time.sleep(20); 'woke'"
PRESUMED_DEAD = re.compile(r"presumed this one dead|marked \d+ session\(s\) of unresponsive supervisors dead")


# ------------------------------------------------------------------ the balancer, from README.md


def readme_balancer_section() -> str:
    text = (h.ROOT / "README.md").read_text()
    m = re.search(r"^## Behind a load balancer\n(.*?)^## ", text, re.S | re.M)
    assert m, 'README.md has no "## Behind a load balancer" section'
    return m.group(1)


def balancer_recipe(member_urls: list[str], errors_dir: Path) -> tuple[str, dict[int, str]]:
    """README's balancer configuration with the example's hosts, module directory and error
    directory replaced by this deployment's, and the error documents its shell lines write. The
    substitutions must each apply exactly, so the README cannot drift from what is tested."""
    section = readme_balancer_section()
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M)
    apache = [b for lang, b in blocks if lang == "apache"]
    shell = [b for lang, b in blocks if lang == "sh"]
    assert len(apache) == 1 and len(shell) == 1, "the README section needs one apache and one sh block"
    conf = apache[0]
    assert "/usr/lib/apache2/modules/" in conf
    conf = conf.replace("/usr/lib/apache2/modules", str(h.HTTPD_MODULES))
    for i, url in enumerate(member_urls, 1):
        example = f"http://livy{i}.example.org:8998"
        assert conf.count(example) == 1, f"README's recipe should name {example} once"
        conf = conf.replace(example, url)
    assert "example.org" not in conf, "README's recipe names more nodes than the test runs"
    assert "/etc/apache2/livy-errors" in conf
    conf = conf.replace("/etc/apache2/livy-errors", str(errors_dir))
    docs = {int(code): body for body, code in
            re.findall(r"^echo '([^']*)' > /etc/apache2/livy-errors/(\d+)\.json$", shell[0], re.M)}
    assert set(docs) == {502, 503, 504}, docs
    for code, body in docs.items():
        parsed = json.loads(body)
        assert list(parsed) == ["msg"] and parsed["msg"], body
        assert f"ErrorDocument {code} /livy-errors/{code}.json" in conf
    for needle in ("balancer://livy", "failonstatus=", "ProxyErrorOverride Off", "ProxyPass \"/\""):
        assert needle in conf, needle
    return conf, docs


class Balancer(h.LivyServer):
    """A plain httpd (no mod_livy) running README's balancer recipe in front of member_urls."""

    def __init__(self, base: Path, name: str, member_urls: list[str]):
        super().__init__(base, name, None, proxy=False)
        self.member_urls = member_urls
        self.errors_dir = self.root / "livy-errors"
        self.recipe, self.error_docs = balancer_recipe(member_urls, self.errors_dir)
        # mod_proxy logs a node it cannot reach, or one it takes out on failonstatus, as errors:
        # here they are what the test does to it.
        self.allow_errors(r"\[proxy(?:_http|_balancer)?:error\]")

    def render(self) -> str:
        user = f"User {h.RUN_USER}\nGroup {h.RUN_USER}\n" if h.IS_ROOT else ""
        mpm = textwrap.dedent(h.MPM_CONF["event"]).format(mods=h.HTTPD_MODULES)
        return (
            "# rendered by tests/integration/test_faults.py: README.md's balancer recipe\n"
            + self.preamble()
            + f"{user}\n{mpm}\n"
            f"LoadModule authz_core_module {h.HTTPD_MODULES}/mod_authz_core.so\n"
            f"{self.recipe}\n"
        )

    def write_files(self) -> None:
        super().write_files()
        self.errors_dir.mkdir(exist_ok=True)
        self.errors_dir.chmod(0o755)
        for code, body in self.error_docs.items():
            path = self.errors_dir / f"{code}.json"
            path.write_text(body + "\n")
            path.chmod(0o644)


# ------------------------------------------------------------------ the deployment


@dataclass
class Deployment:
    pg: h.PgCluster
    nodes: list[h.LivyServer]
    balancer: Balancer
    factory: h.ServerFactory
    sessions: list[int] = field(default_factory=list)
    restarted_hosts: set = field(default_factory=set)  # supervisors killed and restarted
    supervisors: dict = field(default_factory=dict)    # host_id -> its livy-supervisor process

    def start_supervisor(self, host: str) -> int:
        """Starts host's supervisor (livy-supervisor --foreground, as systemd would); returns
        its supervisors row id once it has registered."""
        proc = self.node_of_host(host).start_external_supervisor()
        self.supervisors[host] = proc
        return wait_registered(self, host, proc.pid)

    def client(self, server: h.LivyServer | None = None) -> Client:
        return Client(server or self.balancer, self.pg, DBNAME)

    def value(self, sql: str):
        rows = self.pg.psql(sql, db=DBNAME)
        return rows[0][0] if rows else None

    def owner_host(self, sid: int) -> str | None:
        return self.value(f"SELECT v.host FROM sessions s JOIN supervisors v ON v.id = s.supervisor_id "
                          f"WHERE s.id = {int(sid)}")

    def supervisor_rows(self, host: str) -> list[tuple]:
        return self.pg.psql(f"SELECT id, pid, stopped_at IS NOT NULL FROM supervisors WHERE host = '{host}' "
                            "ORDER BY id", db=DBNAME)

    def node_of_host(self, host: str) -> h.LivyServer:
        return self.nodes[HOSTS.index(host)]

    def state(self, sid: int) -> str:
        """A session's state, read from a node directly (any node: they share the database)."""
        for node in self.nodes:
            try:
                r = requests.get(f"{node.url}/sessions/{sid}/state", timeout=10)
                if r.status_code == 200:
                    return r.json()["state"]
            except requests.RequestException:
                pass
        return self.value(f"SELECT state FROM sessions WHERE id = {int(sid)}")

    def supervisor_log_sizes(self) -> list[int]:
        return [supervisor_log(n).stat().st_size if supervisor_log(n).exists() else 0 for n in self.nodes]

    def supervisor_log_since(self, sizes: list[int]) -> str:
        out = []
        for node, size in zip(self.nodes, sizes):
            with open(supervisor_log(node), "rb") as f:
                f.seek(size)
                out.append(f.read().decode(errors="replace"))
        return "".join(out)


def supervisor_log(node: h.LivyServer) -> Path:
    return node.root / "logs" / "supervisor.log"


wait_for = h.wait_for


def wait_registered(d: Deployment, host: str, pid: int) -> int:
    """The supervisors row id of host's supervisor with this pid, once it has registered."""
    def row():
        for sv_id, sv_pid, stopped in d.supervisor_rows(host):
            if int(sv_pid) == pid and stopped == "f":
                return int(sv_id)
        return None
    return wait_for(row, 30, f"supervisor {host} (pid {pid}) to register")


def start_session(d: Deployment) -> int:
    return d.client().create(kind="pyspark", conf=FAST_CONF)["id"]


def wait_claimed(d: Deployment, sid: int, host: str | None = None) -> str:
    return wait_for(lambda: (lambda o: o if o and (host is None or o == host) else None)(d.owner_host(sid)),
                    30, f"session {sid} to be claimed" + (f" by {host}" if host else ""))


@pytest.fixture(scope="module")
def fault_table(tmp_path_factory):
    rows: list[dict] = []
    yield rows
    table = render_table(rows)
    path = tmp_path_factory.mktemp("faults") / "fault-table.txt"
    path.write_text(table + "\n")
    print(f"\n\nFault table (also in {path}):\n{table}\n")


@pytest.fixture(scope="module")
def deployment(work_dir, spark_env):
    """PostgreSQL, two nodes (each with a standalone supervisor of its own host_id), the balancer;
    no sessions yet."""
    pg = h.PgCluster(work_dir, "pg-faults")
    factory = h.ServerFactory(work_dir, pg, "faults")
    try:
        pg.setup()
        nodes = [factory(mpm="event", supervisor="external", supervisor_conf={**SUPERVISOR_CONF, "host_id": host})
                 for host in HOSTS]
        balancer = Balancer(work_dir, "faults-lb", [n.url for n in nodes])
        factory.servers.append(balancer)
        balancer.start()
    except h.HarnessError as e:
        factory.finish()
        pg.destroy()
        pytest.fail(str(e), pytrace=False)
    d = Deployment(pg, nodes, balancer, factory)
    yield d
    problems = factory.finish()
    pg.destroy()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def spread(deployment):
    """Three pyspark sessions, two on supervisor faults-a and one on faults-b, all idle."""
    d = deployment
    d.start_supervisor(HOSTS[0])
    on_a = [start_session(d) for _ in range(2)]
    for sid in on_a:
        wait_claimed(d, sid, HOSTS[0])  # faults-a is full now (max_sessions 2)
    d.start_supervisor(HOSTS[1])
    on_b = start_session(d)
    wait_claimed(d, on_b, HOSTS[1])
    d.sessions = on_a + [on_b]
    t = time.monotonic()
    for sid in d.sessions:
        d.client().wait_session(sid, "idle")
    print(f"\n[faults] sessions {d.sessions} idle after {time.monotonic() - t:.0f}s "
          f"(owners: {[d.owner_host(s) for s in d.sessions]})")
    return d


def live_sessions(d: Deployment, row: dict) -> list[int]:
    """The deployment's sessions, replacing any a previous scenario lost (noted in the row)."""
    dead = [sid for sid in d.sessions if d.state(sid) not in LIVE]
    if dead:
        row["notes"].append(f"replaced dead sessions {dead} first")
        d.sessions = [sid for sid in d.sessions if sid not in dead]
        fresh = [start_session(d) for _ in dead]
        for sid in fresh:
            d.client().wait_session(sid, "idle")
        d.sessions += fresh
    return list(d.sessions)


# ------------------------------------------------------------------ load


@dataclass
class Posted:
    sid: int
    code: str
    expected: str
    status: object          # 201, another code, or an exception's name
    stid: int | None = None


class Load:
    """CLIENT_THREADS threads, each posting `a + b` statements in turn to the sessions through
    the balancer and polling each till it is available (or the load stops), recording every
    request: when it started and ended, and its status (or the exception's name)."""

    def __init__(self, url: str, tag: str, sids: list[int], threads: int = CLIENT_THREADS):
        self.url = url
        self.tag = tag
        self.sids = sids
        self.threads = threads
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[float, float, str, object]] = []
        self.posted: list[Posted] = []
        self.non_json_errors: list[str] = []
        self.error_msgs: Counter = Counter()  # (status, msg) of the JSON error answers
        self.failures: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def call(self, http: requests.Session, method: str, path: str, **kw):
        t0 = time.monotonic()
        body = None
        try:
            r = http.request(method, self.url + path, timeout=30, **kw)
            status = r.status_code
            try:
                body = r.json()
            except ValueError:
                body = None
            if status >= 400 and isinstance(body, dict) and list(body) == ["msg"]:
                with self.lock:
                    self.error_msgs[(status, body["msg"])] += 1
            elif status >= 400:
                with self.lock:
                    self.non_json_errors.append(f"{method} {path}: {status} "
                                                f"{r.headers.get('Content-Type')} {r.text[:120]!r}")
        except requests.RequestException as e:
            status = type(e).__name__
        with self.lock:
            self.requests.append((t0, time.monotonic(), method, status))
        return status, body

    def _run(self, i: int) -> None:
        try:
            with requests.Session() as http:
                n = 0
                while not self.stop_event.is_set():
                    sid = self.sids[(i + n) % len(self.sids)]
                    a, b = 1000 * (i + 1) + n, 7 * n
                    code = f"{a} + {b}  # {self.tag}-{i}-{n}"
                    status, body = self.call(http, "POST", f"/sessions/{sid}/statements",
                                             json={"code": code, "kind": "pyspark"})
                    p = Posted(sid, code, str(a + b), status)
                    if status == 201:
                        p.stid = body["id"]
                    with self.lock:
                        self.posted.append(p)
                    n += 1
                    if p.stid is None:
                        self.stop_event.wait(0.3)
                        continue
                    while not self.stop_event.is_set():
                        status, body = self.call(http, "GET", f"/sessions/{sid}/statements/{p.stid}")
                        if status == 200 and body["state"] not in ("waiting", "running"):
                            break
                        self.stop_event.wait(0.2)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.failures.append(e)

    def start(self) -> "Load":
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(60)
        assert not any(t.is_alive() for t in self._threads), "load threads did not stop"
        if self.failures:
            raise self.failures[0]

    def errors(self, during=None) -> Counter:
        """Requests that did not succeed, by status; `during(t0, t1)` filters them by time."""
        return Counter(str(s) for t0, t1, _, s in self.requests
                       if s not in (200, 201) and (during is None or during(t0, t1)))


@dataclass
class Outcome:
    """What became of a load's statements, read after it stopped."""
    committed_in_db: int = 0
    committed_unacked: int = 0     # in the database although the POST got no 201
    completed_ok: int = 0
    lost: list = field(default_factory=list)          # acked (201) but not in the database
    unfinished: list = field(default_factory=list)    # committed, not available before the deadline
    wrong: list = field(default_factory=list)         # available with another output
    drain_s: float = 0.0


def settle_statements(d: Deployment, load: Load, timeout: float = 60) -> Outcome:
    """Waits until every statement of the load that the database holds is available (read from
    a node directly), and checks each one's output; acked statements must all be there. `1 + 1`
    takes milliseconds: a minute after the load stopped, one still waiting or running is stuck."""
    out = Outcome()
    t = time.monotonic()
    rows = d.pg.psql(f"SELECT session_id, id, code FROM statements WHERE code LIKE '%# {load.tag}-%'", db=DBNAME)
    in_db = {code: (int(sid), int(stid)) for sid, stid, code in rows}
    out.committed_in_db = len(in_db)
    acked = {p.code: p for p in load.posted if p.status == 201}
    for code, p in acked.items():
        if in_db.get(code) != (p.sid, p.stid):
            out.lost.append(f"{p.sid}/{p.stid} {code!r}: acked 201, database has {in_db.get(code)}")
    out.committed_unacked = len(set(in_db) - set(acked))
    expected = {p.code: p.expected for p in load.posted}
    deadline = time.monotonic() + timeout
    pending = dict(in_db)
    while pending and time.monotonic() < deadline:
        for code, (sid, stid) in list(pending.items()):
            st = read_statement(d, sid, stid)
            if st is None or st["state"] in ("waiting", "running"):
                continue
            del pending[code]
            output = st.get("output") or {}
            if (st["state"] == "available" and output.get("status") == "ok"
                    and output.get("data", {}).get("text/plain") == expected[code]):
                out.completed_ok += 1
            else:
                out.wrong.append(f"{sid}/{stid} {code!r}: {st['state']} {json.dumps(output)[:300]}")
        if pending:
            time.sleep(0.5)
    out.unfinished = [f"{sid}/{stid} {code!r}: {(read_statement(d, sid, stid) or {}).get('state')}"
                      for code, (sid, stid) in pending.items()]
    out.drain_s = time.monotonic() - t
    return out


def read_statement(d: Deployment, sid: int, stid: int) -> dict | None:
    for node in d.nodes:
        try:
            r = requests.get(f"{node.url}/sessions/{sid}/statements/{stid}", timeout=10)
            if r.status_code == 200:
                return r.json()
        except requests.RequestException:
            pass
    return None


# ------------------------------------------------------------------ the table


def new_row(scenario: str) -> dict:
    return {"scenario": scenario, "requests": 0, "errors": Counter(), "submitted": 0, "committed": 0,
            "acked": 0, "completed": 0, "lost_sessions": 0, "notes": []}


def fill_row(row: dict, load: Load, outcome: Outcome, lost_sessions: int) -> None:
    row["requests"] += len(load.requests)
    row["errors"] += load.errors()
    row["submitted"] += len(load.posted)
    row["acked"] += sum(p.status == 201 for p in load.posted)
    row["committed"] += outcome.committed_in_db
    row["completed"] += outcome.completed_ok
    row["lost_sessions"] += lost_sessions


def render_table(rows: list[dict]) -> str:
    head = ("scenario", "requests", "client errors by code", "statements submitted / committed (201s) / completed",
            "sessions lost", "notes")
    lines = []
    for r in rows:
        errs = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
        stmts = f"{r['submitted']} / {r['committed']} ({r['acked']}) / {r['completed']}"
        lines.append((r["scenario"], str(r["requests"]), errs, stmts, str(r["lost_sessions"]),
                      "; ".join(r["notes"])))
    widths = [max(len(x) for x in col) for col in zip(head, *lines)] if lines else [len(x) for x in head]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), "-+-".join("-" * w for w in widths)]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def error_sources(load: Load, balancer: Balancer) -> tuple[int, int]:
    """How many error answers the balancer made itself (its ErrorDocuments) and how many it
    passed on from a node."""
    own = {json.loads(body)["msg"] for body in balancer.error_docs.values()}
    by_balancer = sum(n for (_, msg), n in load.error_msgs.items() if msg in own)
    return by_balancer, sum(load.error_msgs.values()) - by_balancer


def error_sources_text(load: Load, balancer: Balancer) -> str:
    by_balancer, by_nodes = error_sources(load, balancer)
    return f"error answers made by the balancer {by_balancer}, passed on from nodes {by_nodes}"


def report(row: dict, load: Load, outcome: Outcome, extra: str = "") -> None:
    print(f"\n[faults] {row['scenario']}: {len(load.requests)} requests, errors {dict(load.errors()) or 'none'}; "
          f"statements submitted {len(load.posted)}, acked {sum(p.status == 201 for p in load.posted)}, "
          f"in the database {outcome.committed_in_db} ({outcome.committed_unacked} without a 201), "
          f"completed {outcome.completed_ok}, settled in {outcome.drain_s:.1f}s; "
          f"sessions lost {row['lost_sessions']}{extra}")
    if load.non_json_errors:
        print("[faults]   errors that were not JSON {\"msg\"}: " + "; ".join(load.non_json_errors[:5]))


class Problems:
    """Every broken promise of a scenario, asserted at its end (after its figures are out)."""

    def __init__(self):
        self.items: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.items.append(what)

    def statements(self, outcome: Outcome) -> None:
        self.check(not outcome.lost, f"{len(outcome.lost)} acked statement(s) are not in the database: "
                   + "; ".join(outcome.lost[:5]))
        self.check(not outcome.unfinished, f"{len(outcome.unfinished)} committed statement(s) never completed: "
                   + "; ".join(outcome.unfinished[:5]))
        self.check(not outcome.wrong, f"{len(outcome.wrong)} statement(s) completed wrongly: "
                   + "; ".join(outcome.wrong[:5]))

    def sessions_live(self, d: Deployment, sids: list[int]) -> int:
        states = {sid: d.state(sid) for sid in sids}
        dead = {sid: s for sid, s in states.items() if s not in LIVE}
        self.check(not dead, f"session(s) no longer idle/busy: {dead}")
        return len(dead)

    def no_presumed_dead(self, d: Deployment, sizes: list[int]) -> None:
        lines = [line for line in d.supervisor_log_since(sizes).splitlines() if PRESUMED_DEAD.search(line)]
        self.check(not lines, "a supervisor presumed another dead: " + " | ".join(lines[:4]))

    def json_errors(self, load: Load) -> None:
        self.check(not load.non_json_errors, "error answers that were not JSON {\"msg\"}: "
                   + "; ".join(load.non_json_errors[:5]))

    def done(self) -> None:
        assert not self.items, "\n".join(f"- {p}" for p in self.items)


# ------------------------------------------------------------------ the balancer recipe alone


def test_balancer_recipe_answers_its_own_errors_as_json(work_dir):
    """README's recipe in front of two nodes that are not there: the balancer's own 503 is the
    JSON document of the recipe."""
    factory = h.ServerFactory(work_dir, None, "faults-lb-alone")
    lb = Balancer(work_dir, "faults-lb-alone", [f"http://127.0.0.1:{h.free_port()}" for _ in range(2)])
    factory.servers.append(lb)
    try:
        lb.start(wait_ready=False)
        r = requests.get(f"{lb.url}/version", timeout=10)
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json"), r.headers
        assert r.json() == json.loads(lb.error_docs[503])
    finally:
        problems = factory.finish()
    assert not problems, problems


# ------------------------------------------------------------------ the scenarios


def restart_pg(pg: h.PgCluster) -> None:
    pg._as_pg(pg.bin / "pg_ctl", "-D", pg.data, "-l", pg.log, "-m", "fast", "-w", "-t", "60", "restart",
              what="pg_ctl restart")


def probe(url: str, path: str, n: int = 24, threads: int = 4) -> Counter:
    """n GETs on fresh connections (so they land on every httpd child), `threads` at a time."""
    seen = Counter()
    lock = threading.Lock()

    def run(k):
        for _ in range(n // threads):
            try:
                status = requests.get(url + path, headers={"Connection": "close"}, timeout=30).status_code
            except requests.RequestException as e:
                status = type(e).__name__
            with lock:
                seen[str(status)] += 1

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return seen


def database_outages(d: Deployment, row: dict, tag: str, outages: list) -> None:
    """Runs the load while each of `outages` (a callable that returns once PostgreSQL is back)
    happens in turn, probing every node and the balancer 2 s after each; then keeps the load
    going for longer than supervisor_dead_after, so that a supervisor that stalled would be
    presumed dead, and checks what every fault scenario promises plus: no client error once the
    database has been back for 2 s, none in the probes."""
    sids = live_sessions(d, row)
    sizes = d.supervisor_log_sizes()
    problems = Problems()
    load = Load(d.balancer.url, tag, sids).start()
    time.sleep(3)
    windows = []  # (start, end) of each outage, end = the database back + 2 s
    probes: dict[str, Counter] = {}
    targets = [(f"node{i + 1}", n.url) for i, n in enumerate(d.nodes)] + [("balancer", d.balancer.url)]
    for k, outage in enumerate(outages):
        t0 = time.monotonic()
        outage()
        t1 = time.monotonic()
        windows.append((t0, t1 + 2))
        time.sleep(2)
        for name, url in targets:
            for code, count in probe(url, f"/sessions/{sids[k % len(sids)]}").items():
                probes.setdefault(name, Counter())[code] += count
        print(f"[faults]   outage {k + 1}: the database was back after {t1 - t0:.1f}s")
        time.sleep(1.5)
    time.sleep(DEAD_AFTER_S + 2)
    load.stop()
    outcome = settle_statements(d, load)

    def in_outage(t0, t1):
        return any(t0 < end and t1 > start for start, end in windows)

    late = load.errors(lambda t0, t1: not in_outage(t0, t1))
    lost = problems.sessions_live(d, sids)
    fill_row(row, load, outcome, lost)
    row["requests"] += sum(sum(c.values()) for c in probes.values())
    probe_errors = {name: Counter({k: v for k, v in c.items() if k != "200"}) for name, c in probes.items()}
    row["notes"].append("probes 2 s after: " + ", ".join(
        f"{name} {dict(c) or 'ok'}" for name, c in probe_errors.items()))
    if late:
        row["notes"].append(f"errors outside the outages: {dict(late)}")
    row["errors"] += sum(probe_errors.values(), Counter())
    report(row, load, outcome, extra=f"; errors outside the outage windows {dict(late) or 'none'}; "
                                      f"probes {probes}; {error_sources_text(load, d.balancer)}")

    problems.statements(outcome)
    problems.no_presumed_dead(d, sizes)
    problems.json_errors(load)
    # The nodes' own 503s reach clients as they are (ProxyErrorOverride Off), not replaced by
    # the balancer's documents.
    problems.check(not load.error_msgs or error_sources(load, d.balancer)[1] > 0,
                   f"every error answer was the balancer's own: {dict(load.error_msgs)}")
    for name, c in probe_errors.items():
        problems.check(not c, f"{name}: probes 2 s after the database was back did not all succeed: {dict(c)}")
    problems.check(not late, f"client errors outside the outage windows (the database back for 2 s): {dict(late)}")
    problems.done()


def test_1_postgresql_restarted_under_load(spread, fault_table):
    row = new_row(f"1. PostgreSQL restarted {PG_RESTARTS}x (pg_ctl restart -m fast)")
    fault_table.append(row)
    database_outages(spread, row, "pg", [lambda: restart_pg(spread.pg)] * PG_RESTARTS)


def test_1b_postgresql_down_longer_than_supervisor_dead_after(spread, fault_table):
    """A slow restart (an upgrade, a long shutdown checkpoint): the database is away for longer
    than supervisor_dead_after. Every supervisor's heartbeat is stale when they come back; none
    may take that for the others' death."""
    row = new_row(f"1b. PostgreSQL stopped for {LONG_OUTAGE_S}s (> supervisor_dead_after)")
    fault_table.append(row)

    def long_outage():
        spread.pg.stop("fast")
        time.sleep(LONG_OUTAGE_S)
        spread.pg.start()

    database_outages(spread, row, "pgdown", [long_outage])


def kill_httpd(node: h.LivyServer) -> None:
    """kill -9 of the whole node: httpd's parent and its children (one process group)."""
    pid = node.pid
    os.killpg(pid, signal.SIGKILL)
    assert not h.wait_gone([pid] + h.pids_mentioning(f"{node.root}/httpd.conf"), 10)


def statement_requests(node: h.LivyServer) -> int:
    """Statement requests in the node's access log so far."""
    log = node.root / "logs" / "access_log"
    return sum("/statements" in line for line in log.read_text().splitlines()) if log.exists() else 0


def test_2_node_killed_under_load(spread, fault_table):
    d = spread
    row = new_row("2. kill -9 of httpd node1")
    fault_table.append(row)
    sids = live_sessions(d, row)
    sizes = d.supervisor_log_sizes()
    problems = Problems()
    victim = d.nodes[0]
    load = Load(d.balancer.url, "node", sids).start()
    time.sleep(4)
    t_kill = time.monotonic()
    kill_httpd(victim)
    time.sleep(8)
    t_back = time.monotonic()
    served_before = statement_requests(victim)
    victim.start()  # the operator brings it back; the balancer tries it again after retry=5
    time.sleep(7)
    load.stop()
    outcome = settle_statements(d, load)
    lost = problems.sessions_live(d, sids)
    fill_row(row, load, outcome, lost)
    after_kill = load.errors(lambda t0, t1: t0 > t_kill + 1)
    served_again = statement_requests(victim) - served_before
    report(row, load, outcome, extra=f"; errors of requests started >1 s after the kill {dict(after_kill) or 'none'}"
                                      f"; node1 was down {t_back - t_kill:.0f}s, then served {served_again} statement "
                                      f"requests; {error_sources_text(load, d.balancer)}")
    row["notes"].append(f"node1 down {t_back - t_kill:.0f}s, then served {served_again} statement requests")
    problems.statements(outcome)
    problems.no_presumed_dead(d, sizes)
    problems.json_errors(load)
    # Only requests the killed node had in hand may fail: one per client thread at most.
    problems.check(sum(load.errors().values()) <= CLIENT_THREADS,
                   f"more client errors than requests in flight at the kill: {dict(load.errors())}")
    problems.check(not after_kill, f"the balancer did not fail over: errors after the kill {dict(after_kill)}")
    problems.check(served_again > 0, "node1 served no statement request after it was restarted")
    problems.done()


def test_5_graceful_restart_of_both_nodes_under_load(spread, fault_table):
    d = spread
    row = new_row("5. graceful restart of node1 and node2")
    fault_table.append(row)
    sids = live_sessions(d, row)
    sizes = d.supervisor_log_sizes()
    problems = Problems()
    load = Load(d.balancer.url, "graceful", sids).start()
    time.sleep(3)
    for node in d.nodes:
        node.graceful()
        time.sleep(3)
    load.stop()
    outcome = settle_statements(d, load)
    lost = problems.sessions_live(d, sids)
    fill_row(row, load, outcome, lost)
    report(row, load, outcome)
    problems.statements(outcome)
    problems.no_presumed_dead(d, sizes)
    problems.check(not load.errors(), f"client errors during graceful restarts: {dict(load.errors())}")
    problems.done()


def test_3_supervisor_killed_and_restarted_with_its_host_id(spread, fault_table):
    d = spread
    row = new_row("3. kill -9 of a supervisor, restarted (same host_id)")
    fault_table.append(row)
    sids = live_sessions(d, row)
    problems = Problems()
    owners = {sid: d.owner_host(sid) for sid in sids}
    host = Counter(owners.values()).most_common(1)[0][0]
    held = [sid for sid, o in owners.items() if o == host]
    repls = {sid: d.client().repl_pid(sid) for sid in held}
    node = d.node_of_host(host)
    old_pid = d.supervisors[host].pid
    assert d.supervisors[host].poll() is None, f"{host}'s supervisor is not running"
    sizes = d.supervisor_log_sizes()
    load = Load(d.balancer.url, "supervisor", sids).start()
    time.sleep(3)
    t_kill = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    node.stop_external_supervisor()  # reaps it
    new_id = d.start_supervisor(host)  # the same configuration: host_id and run_dir
    new_pid = d.supervisors[host].pid
    t_back = time.monotonic()
    d.restarted_hosts.add(host)
    time.sleep(DEAD_AFTER_S + 3)  # past supervisor_dead_after from the kill: nobody may reap them
    load.stop()
    outcome = settle_statements(d, load)
    lost = problems.sessions_live(d, sids)
    fill_row(row, load, outcome, lost)
    adopted = [sid for sid in held if d.owner_host(sid) == host
               and d.value(f"SELECT supervisor_id FROM sessions WHERE id = {sid}") == str(new_id)
               and d.client().repl_pid(sid) == repls[sid]]
    log = d.supervisor_log_since(sizes)
    row["notes"].append(f"{host} held {held}; back in {t_back - t_kill:.1f}s; adopted {adopted}")
    report(row, load, outcome, extra=f"; {host} (pid {old_pid} -> {new_pid}) held {held}, adopted {adopted}")
    problems.statements(outcome)
    problems.no_presumed_dead(d, sizes)
    problems.check(adopted == held, f"sessions {held} of {host} were not all adopted with their REPLs: {adopted}")
    problems.check(f"taking over {len(held)} session(s)" in log, f"{host}'s log does not say it took over:\n"
                   + log[-1500:])
    problems.check(not load.errors(), f"client errors while a supervisor was down: {dict(load.errors())}")
    problems.done()


def test_4_repl_killed_under_load(spread, fault_table):
    d = spread
    row = new_row("4. kill -9 of one session's REPL")
    fault_table.append(row)
    sids = live_sessions(d, row)
    problems = Problems()
    # A REPL its supervisor started itself: its end names the signal (an adopted one's cannot).
    own = [sid for sid in sids if d.owner_host(sid) not in d.restarted_hosts]
    victim = (own or sids)[-1]
    others = [sid for sid in sids if sid != victim]
    sizes = d.supervisor_log_sizes()
    c = d.client()
    slow = c.submit(victim, SLEEPY)
    c.wait_statement(victim, slow["id"], "running", timeout=30)
    pid = c.repl_pid(victim)
    members = h.session_members(pid)
    load = Load(d.balancer.url, "repl", others).start()
    time.sleep(3)
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    states = []
    while time.monotonic() - t_kill < 30:
        s = d.state(victim)
        if not states or states[-1] != s:
            states.append(s)
        if s not in LIVE:
            break
        time.sleep(0.1)
    t_dead = time.monotonic() - t_kill
    time.sleep(3)
    load.stop()
    outcome = settle_statements(d, load)
    lost = problems.sessions_live(d, others)
    fill_row(row, load, outcome, lost + (states[-1] not in LIVE))
    st = read_statement(d, victim, slow["id"])
    row["notes"].append(f"session {victim} (the victim) {' -> '.join(states)} in {t_dead:.1f}s, "
                        f"its running statement: {st['output'].get('ename') if st and st['output'] else st}; "
                        "the victim is the one session lost")
    report(row, load, outcome, extra=f"; victim {victim}: {states} in {t_dead:.1f}s; "
                                      f"its statement {json.dumps(st and st['output'])[:300]}")
    problems.statements(outcome)
    problems.no_presumed_dead(d, sizes)
    problems.check(not load.errors(), f"client errors in other sessions: {dict(load.errors())}")
    problems.check(states[-1] == "dead" and set(states) <= LIVE | {"dead"},
                   f"the victim's states were {states}, not ending dead (nor passing through error)")
    output = (st or {}).get("output") or {}
    problems.check(st is not None and st["state"] == "available" and output.get("status") == "error"
                   and output.get("ename") == "SessionDead", f"the running statement ended as {st}")
    evalue = output.get("evalue", "")
    problems.check(f"pid {pid}" in evalue and "unexpectedly" in evalue
                   and (d.owner_host(victim) in d.restarted_hosts or "killed by signal 9" in evalue),
                   f"the statement's error does not name the cause: {evalue!r}")
    problems.check(not h.wait_gone(members, 15), "the killed REPL's JVM is still running")
    # DELETE through the balancer, twice: the second finds nothing (a retried DELETE is harmless).
    first = requests.delete(f"{d.balancer.url}/sessions/{victim}", timeout=30)
    second = requests.delete(f"{d.balancer.url}/sessions/{victim}", timeout=30)
    problems.check(first.status_code == 200 and second.status_code == 404,
                   f"DELETE twice: {first.status_code} {first.text[:100]}, {second.status_code} {second.text[:100]}")
    d.sessions = [sid for sid in d.sessions if sid != victim]
    problems.done()
