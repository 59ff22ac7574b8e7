"""Tenant isolation, tried from inside a real pyspark session: code in alice's session A attacks
bob's session B, the supervisor, httpd and the database the way a hostile notebook user would,
through statements run by a real httpd + managed supervisor + Spark. Each test says what A tried
and asserts what it got."""

from __future__ import annotations

import ast
import json
import pwd
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import livy_client as lc
import livy_harness as h

USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def iso_htpasswd(work_dir):
    return h.write_htpasswd(work_dir / "isolation-htpasswd", USERS)


def auth_conf(htpasswd: Path, *policy: str) -> str:
    return h.basic_auth_conf(htpasswd, "\n".join(("LivyAccessControl On", "LivyAllowedUsers alice bob",
                                                  "LivyImpersonation On") + policy))


UserClient = lc.UserClient


@pytest.fixture(scope="module")
def iso(work_dir, pg, iso_htpasswd, spark_env):
    """One server (managed supervisor, REPLs as the REPL account), and two sessions: alice's A,
    the attacker, and bob's B, the victim."""
    if not h.IS_ROOT:
        pytest.fail("the isolation tests need root (REPLs under their own account)", pytrace=False)
    dbname = "isolation"
    pg.create_database(dbname)
    factory = h.ServerFactory(work_dir, pg, "isolation")
    try:
        server = factory(mpm="event", supervisor="managed", dbname=dbname,
                         extra_conf=auth_conf(iso_htpasswd),
                         supervisor_conf={"repl_user": h.REPL_USER})
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    alice = UserClient(server, pg, dbname, "alice")
    bob = UserClient(server, pg, dbname, "bob")
    a = alice.create(kind="pyspark", conf=lc.FAST_CONF)["id"]
    b = bob.create(kind="pyspark", conf=lc.FAST_CONF)["id"]
    alice.wait_session(a, "idle")
    bob.wait_session(b, "idle")
    assert bob.text(b, "secret_of_bob = 'bob-only'\nsecret_of_bob") == "'bob-only'"
    yield {"server": server, "alice": alice, "bob": bob, "a": a, "b": b, "db": pg,
           "dbname": dbname}
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def in_a(iso, code: str):
    """Runs code in A (alice's session) and returns its text output, which must be ok."""
    return iso["alice"].text(iso["a"], textwrap.dedent(code))


# Defined in A before each probe: what trying f got, "allowed" or the exception's name.
TRIED = """
def tried(f):
    try:
        f()
        return "allowed"
    except Exception as e:
        return type(e).__name__
"""


def in_a_json(iso, code: str):
    """Runs code in A (with tried() defined); its last expression is a JSON string."""
    return json.loads(ast.literal_eval(in_a(iso, TRIED + textwrap.dedent(code))))


def b_facts(iso) -> dict:
    """What the database (and the host) know of B."""
    c = iso["alice"]
    sock = c.db_value(f"SELECT repl_socket FROM sessions WHERE id = {iso['b']}")
    return {"pid": c.repl_pid(iso["b"]), "socket": sock, "dir": str(Path(sock).parent),
            "run_dir": str(Path(sock).parents[2])}


def b_statement_count(iso) -> int:
    return int(iso["alice"].db_value(f"SELECT count(*) FROM statements WHERE session_id = {iso['b']}"))


# ------------------------------------------------------------------ who A runs as


def test_a_runs_as_the_repl_account_not_the_supervisors(iso):
    who = in_a_json(iso, """
        import json, os, pwd
        json.dumps({"user": pwd.getpwuid(os.getuid()).pw_name, "uid": os.getuid(),
                    "euid": os.geteuid(), "groups": os.getgroups(), "pid": os.getpid()})
    """)
    assert who["user"] == h.REPL_USER and who["uid"] == who["euid"]
    assert who["uid"] not in (0, pwd.getpwnam(h.RUN_USER).pw_uid)
    assert pwd.getpwnam(h.RUN_USER).pw_gid not in who["groups"]
    assert who["pid"] == 1  # the first process of a PID namespace of its own
    # Seen from the host: the REPL's process belongs to the REPL account, and it holds no
    # capabilities and cannot gain privileges.
    status = Path(f"/proc/{iso['alice'].repl_pid(iso['a'])}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert int(fields["Uid"].split()[0]) == pwd.getpwnam(h.REPL_USER).pw_uid
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"


def test_a_has_no_database_or_supervisor_settings_in_its_environment(iso):
    env = in_a_json(iso, """
        import json, os
        json.dumps(dict(os.environ))
    """)
    assert [k for k in env if k.startswith(("PG", "LIVY"))] == []
    conninfo = iso["server"].conninfo
    assert not [k for k, v in env.items() if "dbname=" in v or conninfo in v or "passfile" in v]
    own_dir = iso["alice"].db_value(f"SELECT repl_socket FROM sessions WHERE id = {iso['a']}")
    own_dir = str(Path(own_dir).parent)
    assert env["HOME"] == own_dir + "/home" and env["TMPDIR"] == own_dir + "/tmp"
    assert env["SPARK_LOCAL_DIRS"] == own_dir + "/tmp"
    assert in_a(iso, "spark._jvm.java.lang.System.getProperty('java.io.tmpdir')") == repr(own_dir + "/tmp")


# ------------------------------------------------------------------ B's processes and files


def test_a_cannot_see_or_signal_bs_processes(iso):
    b = b_facts(iso)
    httpd = iso["server"].pid
    seen = in_a_json(iso, f"""
        import json, os
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        json.dumps({{"pids": pids,
                    "kill_b": tried(lambda: os.kill({b['pid']}, 0)),
                    "b_environ": tried(lambda: open("/proc/{b['pid']}/environ").read()),
                    "httpd_environ": tried(lambda: open("/proc/{httpd}/environ").read())}})
    """)
    # A's /proc holds its own few processes (the REPL, its JVM, Python workers), none of B's.
    assert b["pid"] not in seen["pids"] and httpd not in seen["pids"] and max(seen["pids"]) < 1000
    assert seen["kill_b"] == "ProcessLookupError"
    assert seen["b_environ"] == "FileNotFoundError" and seen["httpd_environ"] == "FileNotFoundError"


def test_a_cannot_reach_bs_directory_or_socket_or_the_supervisors_files(iso):
    b = b_facts(iso)
    srv = iso["server"]
    seen = in_a_json(iso, f"""
        import json, os, socket
        def connect():
            s = socket.socket(socket.AF_UNIX)
            s.connect({b['socket']!r})
        json.dumps({{"list_b": tried(lambda: os.listdir({b['dir']!r})),
                    "b_tmp": tried(lambda: os.listdir({b['dir'] + '/tmp'!r})),
                    "connect_b": tried(connect),
                    "run_dir": tried(lambda: os.listdir({b['run_dir']!r})),
                    "sessions": tried(lambda: os.listdir({b['run_dir'] + '/sessions'!r})),
                    "b_key": tried(lambda: open({b['run_dir'] + '/session-%d.key' % iso['b']!r}).read()),
                    "supervisor_conf": tried(lambda: open({str(srv.supervisor_conf_path)!r}).read()),
                    "httpd_conf": tried(lambda: open({str(srv.conf_path)!r}).read())}})
    """)
    assert seen["list_b"] == "FileNotFoundError" and seen["b_tmp"] == "FileNotFoundError"
    assert seen["connect_b"] == "FileNotFoundError"
    # A's view of the run directory is an empty tmpfs it may not even list, with its own
    # session directory bound in place.
    assert seen["run_dir"] == "PermissionError" and seen["sessions"] == "PermissionError"
    assert seen["b_key"] == "FileNotFoundError"
    # Denied, or not even there (the tests' ServerRoot is under /tmp, which is A's own); the
    # host-side test below shows the modes keep the REPL account out where it can see them.
    assert seen["supervisor_conf"] in ("PermissionError", "FileNotFoundError"), seen
    assert seen["httpd_conf"] in ("PermissionError", "FileNotFoundError"), seen


def test_without_namespaces_the_files_modes_still_keep_the_repl_account_out(iso):
    # A second layer: on the host, the REPL account can read none of the supervisor's files
    # (secrets, settings, logs) nor the configuration, even where it can name them.
    b = b_facts(iso)
    srv = iso["server"]
    run_dir = Path(b["run_dir"])
    targets = [run_dir / f"session-{iso['b']}.key", run_dir / f"session-{iso['b']}.conf.json",
               run_dir / f"session-{iso['b']}.log", srv.supervisor_conf_path, srv.conf_path]
    for target in targets:
        assert target.exists(), target
        r = subprocess.run(["runuser", "-u", h.REPL_USER, "--", "cat", str(target)],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (target, r.stderr)
    key = run_dir / f"session-{iso['b']}.key"
    assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_uid == pwd.getpwnam(h.RUN_USER).pw_uid


# ------------------------------------------------------------------ B's REPL channel


INTRUDER = textwrap.dedent("""
    import hashlib, hmac, json, secrets, socket, sys
    path, mode = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(15)
    challenge = json.loads(s.makefile("rb").readline())
    if mode == "old":
        first = {"op": "hello"}
    elif mode == "execute":
        first = {"op": "execute", "id": 990, "code": "secret_of_bob = 'stolen'", "kind": "pyspark"}
    else:
        nonce = secrets.token_hex(16)
        msg = "livy-repl-auth 2 supervisor %s %s %s" % (sys.argv[3], challenge["nonce"], nonce)
        first = {"op": "auth", "protocol": 2, "nonce": nonce,
                 "proof": hmac.new(secrets.token_bytes(32), msg.encode(), hashlib.sha256).hexdigest()}
    rest = b""
    try:
        s.sendall((json.dumps(first) + "\\n").encode()
                  + b'{"op":"execute","id":991,"code":"secret_of_bob = 1","kind":"pyspark"}\\n')
    except BrokenPipeError:  # already closed on us
        pass
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:  # closed with our unread lines still in its buffer
            break
        if not chunk:
            break
        rest += chunk
    print(json.dumps({"challenge": challenge["type"], "after": rest.decode()}))
""")


@pytest.mark.parametrize("mode", ["old", "execute", "wrong secret"])
def test_a_connection_to_bs_socket_without_its_secret_changes_nothing(iso, mode):
    # Stronger than A can be: a root process outside every namespace reaches B's socket. It gets
    # the challenge, then nothing, then EOF; B is untouched and its log says what happened.
    b = b_facts(iso)
    before = b_statement_count(iso)
    r = subprocess.run([str(h.VENV_PYTHON), "-c", INTRUDER, b["socket"], mode, str(iso["b"])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"challenge": "challenge", "after": ""}
    bob = iso["bob"]
    assert bob.text(iso["b"], "secret_of_bob") == "'bob-only'"
    assert b_statement_count(iso) == before + 1  # only the statement just run
    assert any("rejected a connection on the REPL socket" in line for line in bob.log(iso["b"]))


def test_the_repl_account_outside_the_namespaces_cannot_reach_bs_socket(iso):
    # The account B runs as, on the host (not in any session's namespaces): the supervisor's
    # run directory keeps it away from the socket altogether.
    r = subprocess.run(["runuser", "-u", h.REPL_USER, "--", str(h.VENV_PYTHON), "-c", INTRUDER,
                        b_facts(iso)["socket"], "old", str(iso["b"])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "PermissionError" in r.stderr, (r.stdout, r.stderr)


# ------------------------------------------------------------------ the database


def test_a_cannot_log_in_to_the_database_without_the_password(iso):
    db = iso["db"]
    tried = in_a_json(iso, f"""
        import json, os, subprocess
        out = {{}}
        for user in ("livy", "postgres"):
            for host in ("127.0.0.1", {str(db.sock_dir)!r}):
                r = subprocess.run(["psql", "-w", "-X", "-h", host, "-p", "{db.port}", "-U", user,
                                    "-d", "livy", "-c", "SELECT 1"], capture_output=True, text=True)
                out[user + "@" + host] = [r.returncode, r.stderr.strip()[-200:]]
        json.dumps(out)
    """)
    assert len(tried) == 4
    for target, (rc, err) in tried.items():
        assert rc != 0, (target, err)
        assert ("password" in err or "No such file" in err or "peer" in err.lower()), (target, err)


# ------------------------------------------------------------------ the end of a session


def test_a_deleted_sessions_directory_and_secret_are_removed(iso):
    alice = iso["alice"]
    sid = alice.create(kind="pyspark", conf=lc.FAST_CONF)["id"]
    alice.wait_session(sid, "idle")
    sock = Path(alice.db_value(f"SELECT repl_socket FROM sessions WHERE id = {sid}"))
    session_dir, run_dir = sock.parent, sock.parents[2]
    assert session_dir.is_dir() and (run_dir / f"session-{sid}.key").exists()
    assert session_dir.stat().st_uid == pwd.getpwnam(h.REPL_USER).pw_uid
    assert session_dir.stat().st_mode & 0o7777 == 0o2710
    assert alice.text(sid, "import os\nopen(os.environ['TMPDIR'] + '/scratch', 'w').write('x')") == "1"
    pid = alice.repl_pid(sid)
    assert alice.server.delete(f"/sessions/{sid}").status_code == 200
    lc.assert_processes_gone([pid], 60, "the deleted session's REPL")
    deadline = time.monotonic() + 30
    while session_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not session_dir.exists() and not (run_dir / f"session-{sid}.key").exists()


# ------------------------------------------------------------------ an OS account per user


ACCOUNT = "livy-t-dana"


@pytest.fixture(scope="module")
def os_account():
    """An OS account for one user, as a site with repl_user_from has them."""
    created = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                              "--shell", "/usr/sbin/nologin", ACCOUNT], capture_output=True, text=True)
    assert created.returncode in (0, 9), created.stderr  # 9: it exists (an earlier run)
    yield ACCOUNT
    subprocess.run(["userdel", ACCOUNT], capture_output=True)


@pytest.fixture(scope="module")
def per_user(work_dir, pg, iso_htpasswd, os_account, spark_env):
    dbname = "isolation_per_user"
    pg.create_database(dbname)
    factory = h.ServerFactory(work_dir, pg, "isolation-per-user")
    try:
        server = factory(mpm="event", supervisor="managed", dbname=dbname,
                         extra_conf=auth_conf(iso_htpasswd, "LivySuperusers alice"),
                         supervisor_conf={"repl_user": None, "repl_user_from": "proxy_user"})
    except h.HarnessError as e:
        factory.finish()
        pytest.fail(str(e), pytrace=False)
    yield UserClient(server, pg, dbname, "alice")
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_repl_user_from_runs_the_repl_as_the_proxy_users_account(per_user, os_account):
    c = per_user
    good = c.create(kind="pyspark", proxyUser=os_account, conf=lc.FAST_CONF)["id"]
    missing = c.create(kind="pyspark", proxyUser="no-such-account-xyz", conf=lc.FAST_CONF)["id"]
    # The session without an account ends dead, saying why; no shared account stands in.
    c.server.allow_errors(r"no OS account named \"no-such-account-xyz\"")
    deadline = time.monotonic() + 60
    while c.session(missing)["state"] not in lc.ENDED_STATES and time.monotonic() < deadline:
        time.sleep(0.2)
    dead = c.session(missing)
    assert dead["state"] == "dead", dead
    log = "\n".join(c.log(missing))
    assert 'no OS account named "no-such-account-xyz"' in log and "repl_user_from" in log, log
    # The other session is unaffected and runs as its proxy user's own account.
    c.wait_session(good, "idle")
    assert c.text(good, "import getpass, os\ngetpass.getuser(), os.getuid()") == \
        repr((os_account, pwd.getpwnam(os_account).pw_uid))


def test_a_result_forged_by_code_in_the_repl_is_dropped(iso):
    # Code in A can reach its own REPL's connection to the supervisor; a result for a statement
    # the supervisor never sent is dropped and logged, and nothing is stored.
    alice = iso["alice"]
    forged = 7000 + iso["a"]
    sent = in_a(iso, f"""
        import gc
        driver = next(o for o in gc.get_objects() if type(o).__name__ == "ReplDriver")
        driver.send({{"type": "result", "id": {forged}, "state": "available",
                     "output": {{"status": "ok", "execution_count": {forged},
                                 "data": {{"text/plain": "forged"}}}}, "started": 1, "completed": 2}})
    """)
    assert sent == "True"
    deadline = time.monotonic() + 10
    line = f"dropped a result for statement {forged}, which this supervisor did not send"
    while not any(line in l for l in iso["server"].error_log_lines()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(line in l for l in iso["server"].error_log_lines())
    assert alice.db_value(f"SELECT count(*) FROM statements WHERE id = {forged}") == "0"
