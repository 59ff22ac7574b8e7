"""scripts/livy-local: one command starts PostgreSQL, httpd with mod_livy and the managed supervisor;
two instances run side by side; stop leaves nothing running; LIVY_HTTPD_CONF_EXTRA is included."""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

import livy_harness as h

LIVY_LOCAL = h.ROOT / "scripts" / "livy-local"


class LocalInstance:
    def __init__(self, base: Path, name: str, extra_conf: str | None = None):
        self.dir = base / name
        self.port = h.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, LIVY_LOCAL_DIR=str(self.dir), LIVY_PORT=str(self.port))
        self.env.pop("LIVY_HTTPD_CONF_EXTRA", None)
        if extra_conf is not None:
            extra = base / f"{name}-extra.conf"
            extra.write_text(extra_conf)
            self.env["LIVY_HTTPD_CONF_EXTRA"] = str(extra)

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(LIVY_LOCAL), command], env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def processes(self) -> list[int]:
        """Live processes that belong to this instance: anything naming its directory, and the
        descendants of its httpd and postmaster (backends and workers do not name it)."""
        pids = set(h.pids_mentioning(f"{self.dir}/"))
        for pidfile in (self.dir / "httpd" / "run" / "httpd.pid", self.dir / "pg" / "data" / "postmaster.pid"):
            try:
                pids.add(int(pidfile.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return sorted(p for p in pids | descendants(pids) if h.process_alive(p))


def descendants(roots) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in h.all_pids():
        f = h._stat_fields(p)
        if f:
            children.setdefault(int(f[1]), []).append(p)
    out, todo = set(), list(roots)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


@pytest.fixture
def local_base():
    d = Path(tempfile.mkdtemp(prefix="livy-local-"))
    d.chmod(0o755)
    instances: list[LocalInstance] = []
    yield d, instances
    for inst in instances:
        inst.run("stop", timeout=120)
        h.terminate(inst.processes())
    if not os.environ.get("LIVY_TEST_KEEP"):
        subprocess.run(["rm", "-rf", str(d)])


def started(inst: LocalInstance) -> None:
    r = inst.run("start")
    assert r.returncode == 0, f"livy-local start failed:\n{r.stdout}\n{r.stderr}"


def test_start_serves_sessions_status_stop_leaves_nothing(local_base):
    base, instances = local_base
    extra = ("# added by LIVY_HTTPD_CONF_EXTRA\n"
             f"LoadModule headers_module {h.HTTPD_MODULES}/mod_headers.so\n"
             "Header always set X-Livy-Extra included\n")
    a = LocalInstance(base, "a", extra_conf=extra)
    instances.append(a)
    started(a)

    r = requests.get(a.url + "/sessions", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"from": 0, "total": 0, "sessions": []}
    assert r.headers.get("X-Livy-Extra") == "included"

    status = a.run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert a.url in status.stdout
    for part in ("httpd: running", "postgresql: running", "supervisor: running"):
        assert part in status.stdout, status.stdout

    # A second start is a no-op that still succeeds.
    started(a)

    before = a.processes()
    assert before, "no processes found for the running instance"
    stop = a.run("stop", timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    left = [p for p in before if h.process_alive(p)] + a.processes()
    assert not left, "still running after stop: " + "; ".join(f"{p}: {h.process_cmdline(p)}" for p in left)

    status = a.run("status")
    assert status.returncode != 0
    assert "httpd: not running" in status.stdout


def test_two_instances_side_by_side(local_base):
    base, instances = local_base
    a, b = LocalInstance(base, "a"), LocalInstance(base, "b")
    instances += [a, b]
    started(a)
    started(b)
    for inst in (a, b):
        r = requests.get(inst.url + "/sessions", timeout=30)
        assert r.status_code == 200 and r.json()["sessions"] == []
    assert "X-Livy-Extra" not in requests.get(a.url + "/version", timeout=30).headers

    assert a.run("stop", timeout=120).returncode == 0
    assert not a.processes()
    # b is untouched by a's stop.
    assert requests.get(b.url + "/sessions", timeout=30).status_code == 200
    assert b.run("stop", timeout=120).returncode == 0
    assert not b.processes()


def test_start_fails_loudly_when_the_port_is_taken(local_base):
    base, instances = local_base
    a = LocalInstance(base, "a")
    instances.append(a)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", a.port))
        s.listen()
        r = a.run("start")
    assert r.returncode != 0
    # The tail of the log that says why.
    assert "Address already in use" in r.stderr or "could not bind" in r.stderr, r.stderr


def test_start_with_auth_everywhere_and_the_local_servers_limits(local_base):
    base, instances = local_base
    htpasswd = h.write_htpasswd(base / "local-htpasswd", ["alice"])
    # Every URL needs credentials but the error page itself.
    extra = h.basic_auth_conf(htpasswd) + "<Location /error>\n    Require all granted\n</Location>\n"
    a = LocalInstance(base, "auth", extra_conf=extra)
    instances.append(a)
    # Ready although every answer is a 401: the probe takes any answer from the module.
    started(a)
    r = requests.get(a.url + "/sessions", timeout=30)
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/json"), r.text
    assert "msg" in r.json()
    r = requests.get(a.url + "/sessions", auth=("alice", h.password("alice")), timeout=30)
    assert r.status_code == 200 and r.json()["total"] == 0, r.text
    # The core's own early errors are JSON too (the ErrorDocument lines of conf/livy.conf).
    with socket.create_connection(("127.0.0.1", a.port), timeout=30) as s:
        s.sendall(b"GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, reply[:500]
    # A client that stalls half-way through its headers does not hold a worker for long
    # (mod_reqtimeout: the headers within 20 s), and hears why.
    started_at = time.monotonic()
    with socket.create_connection(("127.0.0.1", a.port), timeout=90) as s:
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
        first = s.recv(65536)
    waited = time.monotonic() - started_at
    assert first.startswith(b"HTTP/1.1 408"), first[:200]
    assert 15 <= waited <= 35, waited


def test_first_session_takes_the_warm_repl_at_once(local_base):
    """A newcomer's first session: livy-local keeps one warm REPL (LIVY_WARM_SESSIONS, default 1
    with a local master), so POST /sessions answers idle and the first statement runs at once;
    stop leaves neither the session's REPL nor the warm one that replaces it."""
    base, instances = local_base
    a = LocalInstance(base, "warm")
    instances.append(a)
    started(a)
    http = requests.Session()

    def warm_ready():
        text = http.get(a.url + "/metrics", timeout=30).text
        return any(line.startswith("livy_supervisor_warm_repls{") and line.endswith(" 1")
                   for line in text.splitlines())

    h.wait_for(warm_ready, 240, "livy-local's warm REPL", interval=0.5)
    t = time.monotonic()
    r = http.post(a.url + "/sessions", json={"kind": "pyspark"}, timeout=30)
    took = time.monotonic() - t
    assert r.status_code == 201 and r.json()["state"] == "idle", (r.status_code, r.text)
    assert took < 1.0, f"POST /sessions took {took:.3f}s"
    sid = r.json()["id"]
    r = http.post(f"{a.url}/sessions/{sid}/statements", json={"code": "1 + 1"}, timeout=30)
    assert r.status_code == 201, r.text
    st = h.wait_for(lambda: (lambda st: st if st["state"] == "available" else None)(
        http.get(f"{a.url}/sessions/{sid}/statements/{r.json()['id']}", timeout=30).json()), 60,
        "the first statement's result", interval=0.05)
    assert st["output"]["data"]["text/plain"] == "2", st
    stop = a.run("stop", timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    left = a.processes()
    assert not left, "still running after stop: " + "; ".join(f"{p}: {h.process_cmdline(p)}" for p in left)
