"""The module's connection pool under faults and load (issue 11): a bounded number of connections
per process, idle ones closed after LivyDatabasePoolIdle, a database that does not answer costs
each request at most LivyDatabaseAcquireTimeout (in parallel, not one after another), a
PostgreSQL restart costs no request, libpq's notices reach the error log with the module's tag,
a connection dropped under a request is retried once when that cannot do anything twice, and
the startup check of the pools against max_connections, and the node's budget
(LivyDatabaseMaxConnections) that sizes the pools by default.

Figures (connections during and after a burst, timings) are printed: run with -s to see them."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import livy_harness as h

MAX_CONNECTIONS = 24  # the small cluster's; 3 more are reserved for superusers
# httpd's processes at most, by MPM (livy_harness.MPM_CONF: MaxRequestWorkers / ThreadsPerChild)
PROCESSES = {"event": 4, "prefork": 16}


def is_json(r) -> bool:
    return r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"


@pytest.fixture(scope="module")
def small_pg(work_dir):
    """A cluster of this module's own with a small max_connections, restarted by some tests."""
    cluster = h.PgCluster(work_dir, "pg-pool")
    try:
        cluster.setup()
        cluster.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}", db="postgres")
        cluster.stop("fast")
        cluster.start()
    except h.HarnessError as e:
        cluster.destroy()
        pytest.fail(str(e), pytrace=False)
    yield cluster
    cluster.destroy()


def module_connections(pg) -> int:
    return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mod_livy'",
                       db="postgres")[0][0])


def burst(url: str, n: int, workers: int) -> list[tuple[int, float, bool]]:
    """n GETs of url from `workers` threads at once, each on a connection of its own: (status,
    seconds, JSON?) for each."""
    start = threading.Barrier(workers)

    def one(i):
        if i < workers:
            start.wait()
        t0 = time.monotonic()
        try:
            r = requests.get(url, timeout=60)
            if r.status_code != 200:
                print(f"GET {url}: {r.status_code} {r.text[:200]}")
            return r.status_code, time.monotonic() - t0, is_json(r)
        except requests.RequestException as e:
            return repr(e), time.monotonic() - t0, False

    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(one, range(n)))


def log_lines(srv, pattern: str) -> list[str]:
    return [line for line in srv.error_log_lines() if re.search(pattern, line)]


# ------------------------------------------------------------------ sizing and idle expiry


def test_pool_stays_within_its_max_under_load_and_idle_connections_close(livy_server, small_pg, mpm):
    pool_max = 2 if mpm == "event" else 1
    # A generous acquire timeout: this is about the connection bound, and the machine may be busy.
    srv = livy_server(mpm=mpm, db=small_pg,
                      extra_conf=f"LivyDatabasePoolMax {pool_max}\nLivyDatabasePoolIdle 2\n"
                                 "LivyDatabaseAcquireTimeout 60\n")
    bound = pool_max * PROCESSES[mpm]
    # The startup check did the arithmetic: it fits, so no warning.
    fits = log_lines(srv, r"livy: up to \d+ processes .*LivyDatabasePoolMax")
    assert fits and "within PostgreSQL's max_connections 24 (minus 3 reserved)" in fits[-1], srv.log_tail()
    assert f"up to {PROCESSES[mpm]} processes" in fits[-1] and f"= {bound} connections" in fits[-1], fits

    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], module_connections(small_pg))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        t0 = time.monotonic()
        results = burst(srv.url + "/sessions", 200, 200)
        took = time.monotonic() - t0
        after_burst = module_connections(small_pg)
    finally:
        stop.set()
        sampler.join()
    statuses = [s for s, _, _ in results]
    print(f"\n[{mpm}] 200 concurrent GET /sessions in {took:.2f}s: {statuses.count(200)} x 200; "
          f"mod_livy connections: peak {peak[0]} (bound {pool_max} x {PROCESSES[mpm]} processes = {bound}), "
          f"right after {after_burst}")
    assert statuses == [200] * 200, sorted(set(map(str, statuses)))
    assert all(j for _, _, j in results)
    assert 1 <= peak[0] <= bound and after_burst <= bound
    assert not log_lines(srv, r"(?i)too many clients|remaining connection slots")

    # Idle for LivyDatabasePoolIdle (2 s): every process closes them, without any traffic.
    t0 = time.monotonic()
    left = module_connections(small_pg)
    while left and time.monotonic() - t0 < 8:
        time.sleep(0.25)
        left = module_connections(small_pg)
    print(f"[{mpm}] idle connections closed after {time.monotonic() - t0:.2f}s more: {left} left")
    assert left == 0, f"{left} mod_livy connections still open 8 s after the burst"
    # and the pool grows again on demand
    assert requests.get(srv.url + "/sessions", timeout=10).status_code == 200


def test_startup_warns_when_the_pools_may_exceed_max_connections(livy_server, small_pg):
    # event: 4 processes x 10 (the threads each, as LivyDatabasePoolMax) = 40 > 24 - 3; an
    # explicit LivyDatabasePoolMax is not capped by the automatic budget
    srv = livy_server(mpm="event", db=small_pg, extra_conf="LivyDatabasePoolMax 10\n")
    warn = log_lines(srv, r"\[livy:warn\].*LivyDatabasePoolMax")
    print("\n" + "\n".join(warn))
    assert len(warn) == 1, srv.log_tail()
    assert ("livy: up to 4 processes x LivyDatabasePoolMax 10 = 40 connections may exceed "
            "PostgreSQL's max_connections 24 (minus 3 reserved); lower LivyDatabasePoolMax or "
            "MaxRequestWorkers, or put PgBouncer in front") in warn[0], warn[0]
    assert "LivyDatabaseMaxConnections" not in warn[0], warn[0]
    # once per (re)start, from the parent, not once per child
    srv.graceful()
    assert len(log_lines(srv, r"\[livy:warn\].*LivyDatabasePoolMax")) == 2, srv.log_tail()


def test_startup_check_is_skipped_when_the_database_is_down(livy_server, private_pg):
    private_pg.stop("fast")
    srv = livy_server(mpm="event", db=private_pg)
    srv.allow_errors(r"(?i)database|connect")
    skipped = log_lines(srv, r"livy: up to 4 processes x LivyDatabasePoolMax 10 = 40 connections; "
                             r"cannot compare them with the database's max_connections")
    assert skipped and "[livy:info]" in skipped[0], srv.log_tail()
    assert not log_lines(srv, r"\[livy:warn\].*LivyDatabasePoolMax")


# ------------------------------------------------------------------ a database that does not answer


class BlackHole:
    """A TCP listener that accepts connections and never says a word (a hung PostgreSQL)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for c in self.accepted:
            c.close()


def test_unanswering_database_fails_within_the_acquire_timeout_in_parallel(livy_server):
    hole = BlackHole()
    try:
        # connect_timeout 60 in the operator's conninfo: the acquire timeout bounds it anyway.
        srv = livy_server(mpm="event", conninfo=f"host=127.0.0.1 port={hole.port} dbname=livy user=livy "
                                                 "connect_timeout=60",
                          extra_conf="LivyDatabaseAcquireTimeout 2\nLivyDatabasePoolMax 3\n")
        # 8 requests at once on one process's pool of 3: three connect, five wait for a slot;
        # each answers 503 within the 2 s (+ margin), together not one after another (16 s).
        t0 = time.monotonic()
        results = burst(srv.url + "/sessions", 8, 8)
        took = time.monotonic() - t0
        print(f"\n8 concurrent GET /sessions against a database that never answers: "
              f"{[round(t, 2) for _, t, _ in results]} s each, {took:.2f} s in all")
        assert [s for s, _, _ in results] == [503] * 8, results
        assert all(j for _, _, j in results)
        assert max(t for _, t, _ in results) < 2 + 1.5, results
        assert took < 2 * 2, took
        r = requests.get(srv.url + "/version", timeout=10)
        assert r.status_code == 503 and "unavailable" in r.json()["msg"], r.text
        assert log_lines(srv, r"livy: cannot connect to the session database: connecting timed out")
    finally:
        hole.close()


# ------------------------------------------------------------------ a PostgreSQL restart


def test_postgres_restart_costs_no_request(livy_server, small_pg, mpm):
    srv = livy_server(mpm=mpm, db=small_pg, extra_conf="LivyDatabasePoolMax 2\n")
    # Idle pooled connections in every process.
    warm = burst(srv.url + "/sessions", 300, 20)
    assert [s for s, _, _ in warm] == [200] * 300
    before = module_connections(small_pg)
    assert before >= 2, before

    small_pg.stop("fast")  # pg_ctl restart -m fast: the server closes every connection
    small_pg.start()

    results = burst(srv.url + "/sessions", 300, 10)
    statuses = [s for s, _, _ in results]
    replaced = log_lines(srv, r"replacing a database connection the server closed")
    notices = log_lines(srv, r"livy: database: FATAL: +terminating connection due to administrator command")
    print(f"\n[{mpm}] {before} pooled connections before the restart; after it 300 GETs: "
          f"{statuses.count(200)} x 200, {statuses.count(503)} x 503; {len(replaced)} replaced, "
          f"{len(notices)} FATAL notices logged")
    assert statuses == [200] * 300, sorted(set(map(str, statuses)))
    assert replaced and notices
    assert all("[livy:warn]" in line for line in notices), notices
    # libpq's notices go through the module: nothing raw from libpq in the error log.
    raw = [line for line in srv.error_log_lines() if re.match(r"(FATAL|WARNING|server closed)", line)]
    assert not raw, raw


# ------------------------------------------------------------------ a connection dropped under a request


class DropProxy:
    """A TCP proxy in front of PostgreSQL that, when armed with a marker, drops the connection
    carrying the first message that holds it (closing both sides, forwarding nothing): a
    connection the server lost between the pool's check and the query."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.marker: bytes | None = None
        self.dropped = 0
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.startups: list[bytes] = []  # what each connection's client said first
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, marker: str) -> None:
        with self.lock:
            self.marker = marker.encode()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src, dst, from_client):
        first = from_client
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            drop = False
            if data and first:
                self.startups.append(data)
                first = b"\x00\x03\x00\x00" not in data[:8]  # past an SSLRequest, to the startup
            if data and from_client:
                with self.lock:
                    if self.marker and self.marker in data:
                        self.marker, drop = None, True
                        self.dropped += 1
            if not data or drop:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


# One process with one pooled connection, so that the connection a request gets is the one the
# requests before it prepared their statements on.
ONE_CONNECTION = ("StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nServerLimit 1\n"
                  "MaxRequestWorkers 1\nLivyDatabasePoolMax 1\n")


def test_a_connection_dropped_under_a_request_is_retried_only_when_safe(livy_server, clean_db):
    proxy = DropProxy(clean_db.port)
    try:
        conninfo = clean_db.conninfo().replace(f"port={clean_db.port}", f"port={proxy.port}")
        srv = livy_server(mpm="prefork", conninfo=conninfo, extra_conf=ONE_CONNECTION)
        # the dropped connections; one process serving one request at a time, on purpose
        srv.allow_errors(r"(?i)server closed the connection|database", r"AH00161: server reached MaxRequestWorkers")

        def warm(tag):
            """Prepares the statements the steps use on the pooled connection."""
            s = srv.post("/sessions", json={"kind": "sql", "name": f"warm-{tag}"})
            assert s.status_code == 201, s.text
            sid = s.json()["id"]
            assert srv.get(f"/sessions/warm-{tag}").status_code == 200
            assert srv.post(f"/sessions/{sid}/statements", json={"code": "1"}).status_code == 201
            return sid

        def sessions():
            return int(clean_db.psql("SELECT count(*) FROM sessions")[0][0])

        # Every connection asks for the module's settings (the operator's conninfo may override).
        startups = b"".join(proxy.startups)
        assert b"application_name\x00mod_livy\x00" in startups, startups[:300]
        assert b"options\x00-c statement_timeout=30000\x00" in startups, startups[:300]

        # A read: retried on a fresh connection, answered as if nothing happened.
        warm("a")
        proxy.arm("warm-a")
        r = srv.get("/sessions/warm-a")
        assert r.status_code == 200 and r.json()["name"] == "warm-a", r.text
        assert proxy.dropped == 1
        assert log_lines(srv, r"closed a pooled connection under this request .*trying again")

        # A create whose first statement was lost: nothing ran, so it runs again, once.
        warm("b")
        before = sessions()
        proxy.arm("created-once")
        r = srv.post("/sessions", json={"kind": "sql", "name": "created-once"})
        assert r.status_code == 201, r.text
        assert proxy.dropped == 2
        assert sessions() == before + 1
        assert clean_db.psql("SELECT count(*) FROM sessions WHERE name = 'created-once'") == [("1",)]

        # A statement post whose session lookup had completed before the connection went: it
        # is not run again (503), and nothing of it was stored.
        sid = warm("c")
        statements = clean_db.psql(f"SELECT count(*) FROM statements WHERE session_id = {sid}")
        proxy.arm("never-stored")
        r = srv.post(f"/sessions/{sid}/statements", json={"code": "never-stored"})
        assert r.status_code == 503 and is_json(r), r.text
        assert proxy.dropped == 3
        assert clean_db.psql(f"SELECT count(*) FROM statements WHERE session_id = {sid}") == statements
        # and the next request is served on a fresh connection
        assert srv.get(f"/sessions/{sid}").status_code == 200
        print(f"\nretries logged: {len(log_lines(srv, r'trying again on a fresh one'))}")
        assert len(log_lines(srv, r"trying again on a fresh one")) == 2
    finally:
        proxy.close()


# ------------------------------------------------------------------ the node's budget


def peak_connections_under_burst(srv, pg, n: int = 200) -> tuple[int, list]:
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], module_connections(pg))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        results = burst(srv.url + "/sessions", n, n)
    finally:
        stop.set()
        sampler.join()
    return peak[0], results


def cpus() -> int:
    """The CPUs httpd may run on, as the module counts them for its automatic budget."""
    return len(os.sched_getaffinity(0))


def auto_budget(max_connections: int, reserved: int = 3) -> tuple[int, str]:
    """LivyDatabaseMaxConnections auto: half of what PostgreSQL allows, at most 4 per CPU; and
    the text the module logs for it."""
    half = (max_connections - reserved) // 2
    if 4 * cpus() < half:
        return 4 * cpus(), f"auto: {4 * cpus()} (4 per CPU, {cpus()} CPU{'s' if cpus() > 1 else ''} here)"
    return half, f"auto: {half}"


def test_default_pools_share_half_of_what_postgres_allows(livy_server, small_pg):
    # auto: (24 - 3) / 2 = 10 connections for the node (or 4 per CPU when that is fewer), split
    # among 4 event processes (not the 10 threads each, 40 in all, that would exceed
    # max_connections)
    budget, text = auto_budget(24)
    per_process = max(1, budget // PROCESSES["event"])
    bound = per_process * PROCESSES["event"]
    srv = livy_server(mpm="event", db=small_pg, extra_conf="LivyDatabaseAcquireTimeout 60\n")
    fits = log_lines(srv, r"livy: up to \d+ processes .*LivyDatabasePoolMax")
    assert fits and "[livy:info]" in fits[-1], srv.log_tail()
    assert (f"up to 4 processes x LivyDatabasePoolMax {per_process} = {bound} connections, within "
            f"PostgreSQL's max_connections 24 (minus 3 reserved); LivyDatabaseMaxConnections {text}") \
        in fits[-1], fits
    peak, results = peak_connections_under_burst(srv, small_pg)
    print(f"\n200 concurrent GET /sessions, auto budget: peak {peak} mod_livy connections (bound {bound})")
    assert [s for s, _, _ in results] == [200] * 200, sorted({str(s) for s, _, _ in results})
    assert 1 <= peak <= bound, peak


def test_the_automatic_budget_is_a_few_backends_per_cpu(livy_server, pg):
    # The shared cluster allows 300: half would be 148 for the node, 37 per process, and a burst
    # would run that many backends against httpd's threads on this host's few CPUs.
    budget, text = auto_budget(300)
    assert budget == 4 * cpus() < 148
    per_process = max(1, budget // PROCESSES["event"])
    bound = per_process * PROCESSES["event"]
    srv = livy_server(mpm="event", db=pg, extra_conf="LivyDatabaseAcquireTimeout 60\n")
    fits = log_lines(srv, r"livy: up to \d+ processes .*LivyDatabasePoolMax")
    assert fits and f"x LivyDatabasePoolMax {per_process} = {bound} connections" in fits[-1] \
        and f"LivyDatabaseMaxConnections {text}" in fits[-1], fits
    before = module_connections(pg)
    peak, results = peak_connections_under_burst(srv, pg)
    print(f"\n200 concurrent GET /sessions against max_connections 300: peak {peak} mod_livy "
          f"connections (bound {bound} from this server, {before} before from others)")
    assert [s for s, _, _ in results] == [200] * 200, sorted({str(s) for s, _, _ in results})
    assert 1 <= peak - before <= bound, (peak, before)


@pytest.mark.parametrize("budget, per_process", [(5, 1), (12, 3)])
def test_an_explicit_budget_caps_every_pool(livy_server, small_pg, budget, per_process):
    # even an explicit LivyDatabasePoolMax: the budget is the operator's word for the node
    srv = livy_server(mpm="event", db=small_pg,
                      extra_conf=f"LivyDatabaseMaxConnections {budget}\nLivyDatabasePoolMax 10\n"
                                 "LivyDatabaseAcquireTimeout 60\n")
    bound = per_process * PROCESSES["event"]
    fits = log_lines(srv, r"livy: up to \d+ processes .*LivyDatabasePoolMax")
    assert fits and (f"x LivyDatabasePoolMax {per_process} = {bound} connections" in fits[-1]
                     and f"; LivyDatabaseMaxConnections {budget}" in fits[-1]), fits
    peak, results = peak_connections_under_burst(srv, small_pg)
    print(f"\n200 concurrent GET /sessions, LivyDatabaseMaxConnections {budget}: peak {peak} "
          f"mod_livy connections (bound {bound})")
    assert [s for s, _, _ in results] == [200] * 200, sorted({str(s) for s, _, _ in results})
    assert 1 <= peak <= bound, peak


def test_no_budget_keeps_a_connection_per_thread(livy_server, small_pg):
    srv = livy_server(mpm="event", db=small_pg, extra_conf="LivyDatabaseMaxConnections none\n")
    warn = log_lines(srv, r"\[livy:warn\].*LivyDatabasePoolMax 10 = 40 connections may exceed")
    assert len(warn) == 1 and "LivyDatabaseMaxConnections" not in warn[0], srv.log_tail()


@pytest.mark.parametrize("value", ["0", "-3", "many", "12x", "1.5"])
def test_a_bad_budget_stops_httpd_at_startup(livy_server, value):
    srv = livy_server(mpm="event", start=False, extra_conf=f"LivyDatabaseMaxConnections {value}\n")
    with pytest.raises(h.HarnessError) as e:
        srv.start(timeout=20)
    assert "LivyDatabaseMaxConnections must be a number of connections (1 to 100000), auto or none" \
        in str(e.value), str(e.value)[:2000]
