"""roosttest: a small harness for black-box scenarios against roostd and roostctl.

A scenario starts a real roostd in a fresh temporary directory (its own config,
SQLite store and token files, listening on a free loopback port), talks to it
over HTTP and through roostctl, and asserts what an admin or a Dovecot proxy
would see.  The daemon is always killed when the scenario ends, whatever
happens, and its log tail is printed when the scenario fails.

    import roosttest as rt

    def main(t):
        r = t.roost()                       # started and healthy
        st, js = r.api("GET", "/v1/backends")
        rt.eq(st, 200, "list backends")

    rt.run(main)

Binaries come from $ROOST_BUILD (set by tests/run.py), else ./build.
"""

import base64
import atexit
import contextlib
import glob
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

SKIP = 77
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")

_here = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(_here))
BUILD = os.path.abspath(os.environ.get("ROOST_BUILD") or
                        os.path.join(TOP, "build"))
ROOSTD = os.path.join(BUILD, "roostd")
ROOSTCTL = os.path.join(BUILD, "roostctl")

_instances = []


class Skip(Exception):
    """Raised by a scenario that cannot run here (exit 77)."""


# ---------------------------------------------------------------- assertions

class Failure(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def status(resp, want, what):
    """resp is (status, json); check the status and return the JSON."""
    st, js = resp
    if isinstance(want, int):
        want = (want,)
    if st not in want:
        raise Failure("%s: HTTP %r, want %s; body %s" %
                      (what, st, "/".join(map(str, want)), _short(js)))
    return js


def error(resp, want_status, field, what):
    """A rejected request: the status, a JSON error, naming `field`
    (None: no field required)."""
    js = status(resp, want_status, what)
    check(isinstance(js, dict) and isinstance(js.get("error"), str) and
          js["error"] != "", "%s: error body without \"error\": %s" %
          (what, _short(js)))
    if field is not None:
        eq(js.get("field"), field, "%s: error field (body %s)" %
           (what, _short(js)))
    return js


def _short(x, n=400):
    s = x if isinstance(x, str) else json.dumps(x)
    return s if len(s) <= n else s[:n] + "..."


# ---------------------------------------------------------------- helpers

def free_port():
    """A loopback TCP port nobody listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def q(s):
    """Quote a path segment or query value."""
    return urllib.parse.quote(s, safe="")


class Conn:
    """One keep-alive HTTP connection, reopened when the server closes it.
    For bulk requests (thousands of lookups)."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.c = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port,
                                                    timeout=self.timeout)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if r.will_close:
                    self.close()
                return r.status, r.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError, http.client.BadStatusLine):
                # A keep-alive connection closed by the server between
                # requests: retry once on a fresh one.
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


# ---------------------------------------------------------------- roostd

class Roost:
    """One roostd instance in its own temporary directory."""

    def __init__(self, tmp, lookup_token=False, admin_token_mode=0o600,
                 extra_lines=(), events_token=False, **conf):
        self.tmp = tmp
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.conf_path = os.path.join(tmp, "roostd.conf")
        self.log_path = os.path.join(tmp, "roostd.log")
        self.db_path = os.path.join(tmp, "roost.db")
        self.admin_token_file = os.path.join(tmp, "admin.token")
        self.lookup_token_file = os.path.join(tmp, "lookup.token")
        self.admin_token = "adm-" + secrets.token_hex(16)
        self.lookup_token = "lkp-" + secrets.token_hex(16)
        self.events_token_file = os.path.join(tmp, "events.token")
        self.events_token = "evt-" + secrets.token_hex(16)
        self.events_on = events_token	# events_token_file set
        self.proc = None
        self.logf = None
        self.transcript = []	# every response body, to search for secrets
        self._write_secret(self.admin_token_file, self.admin_token,
                           admin_token_mode)
        self._write_secret(self.lookup_token_file, self.lookup_token, 0o600)
        self._write_secret(self.events_token_file, self.events_token, 0o600)
        self.settings = {}
        self.store = "sqlite:" + self.db_path
        if TEST_STORE == "postgresql" and "store" not in conf:
            self.store = _pg_store()
        self.write_config(lookup_token=lookup_token, extra_lines=extra_lines,
                          **conf)
        self._conn = None

    @staticmethod
    def _write_secret(path, value, mode):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        os.chmod(path, mode)

    def write_config(self, lookup_token=False, extra_lines=(), **conf):
        """(Re)write the config file.  conf: any setting by name; a value of
        None leaves the setting out.  lookup_token=True sets
        lookup_token_file.  extra_lines are appended verbatim."""
        s = {
            "listen": "127.0.0.1:%d" % self.port,
            "store": self.store,
            "admin_token_file": self.admin_token_file,
            "log_level": "info",
            # Most scenarios register backends where nothing listens:
            # probes are for the scenarios that ask for them.
            "probe_interval": "0",
        }
        if lookup_token:
            s["lookup_token_file"] = self.lookup_token_file
        if self.events_on:
            s["events_token_file"] = self.events_token_file
        s.update(conf)
        self.settings = {k: v for k, v in s.items() if v is not None}
        lines = ["# written by tests/integration/roosttest.py"]
        for k, v in self.settings.items():
            lines.append("%s = %s" % (k, v))
        lines.extend(extra_lines)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return self.conf_path

    # -- process control

    def start(self, wait=True, timeout=10):
        """Start roostd -d -f CONF.  With wait, returns once /v1/health
        answers, and fails if the daemon exits or does not answer in time."""
        check(self.proc is None or self.proc.poll() is not None,
              "start: roostd already running")
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([ROOSTD, "-d", "-f", self.conf_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf)
        if wait:
            self.wait_healthy(timeout)
        return self.proc

    def wait_healthy(self, timeout=10):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise Failure("roostd exited with %d during start" % rc)
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=2)
                c.request("GET", "/v1/health")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return
                last = "HTTP %d" % r.status
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise Failure("roostd not healthy after %ds (%s)" % (timeout, last))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Send a signal to roostd (default SIGKILL, then reap it)."""
        check(self.alive(), "kill: roostd is not running")
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            return self.wait_exit()
        return None

    def wait_exit(self, timeout=10):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure("roostd did not exit within %ds" % timeout)
        self._close_conn()
        return rc

    def restart(self, timeout=10):
        """kill -9 (if running) and start again on the same store."""
        if self.alive():
            self.kill(signal.SIGKILL)
        self.start(timeout=timeout)

    def stop(self):
        """Always safe: kill the child if it is still there."""
        self._close_conn()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def check_config(self, path=None):
        """roostd -n -f CONF: (exit code, stdout + stderr)."""
        p = subprocess.run([ROOSTD, "-n", "-f", path or self.conf_path],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    # -- HTTP

    def _close_conn(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _auth(self, token):
        if token is None:
            return {}
        if token == "admin":
            return {"Authorization": "Bearer " + self.admin_token}
        if token == "lookup":
            return {"Authorization": "Bearer " + self.lookup_token}
        if token == "wrong":
            return {"Authorization": "Bearer wrong-" + secrets.token_hex(8)}
        return {"Authorization": "Bearer " + token}

    def request(self, method, path, body=None, token="admin", raw=None,
                headers=None):
        """Returns (status, headers dict with lower-case names, bytes)."""
        h = self._auth(token)
        if headers:
            h.update(headers)
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        if self._conn is None:
            self._conn = Conn(self.port)
        try:
            st, hdrs, out = self._conn.request(method, path, data, h)
        except Exception:
            self._close_conn()
            raise
        self.transcript.append(out.decode("utf-8", "replace"))
        return st, {k.lower(): v for k, v in hdrs}, out

    def api(self, method, path, body=None, token="admin", raw=None,
            headers=None):
        """(status, parsed JSON).  Every roostd answer must be JSON."""
        st, _, js = self.api_h(method, path, body, token, raw, headers)
        return st, js

    def api_h(self, method, path, body=None, token="admin", raw=None,
              headers=None):
        """(status, headers, parsed JSON)."""
        st, hdrs, out = self.request(method, path, body, token, raw, headers)
        try:
            js = json.loads(out)
        except ValueError:
            raise Failure("%s %s: HTTP %d with a body that is not JSON: %r" %
                          (method, path, st, out[:200]))
        return st, hdrs, js

    def post_event(self, name, event, fields=None, password="events",
                   raw=None):
        """POST one event as Dovecot's exporter does (the token as the
        Basic auth password, password=None: no Authorization).  Returns
        (status, body bytes)."""
        body = raw
        if body is None:
            body = json.dumps({"event": event, "hostname": "vm",
                               "fields": fields or {}}).encode()
        headers = {}
        if password is not None:
            if password == "events":
                password = self.events_token
            headers["Authorization"] = "Basic " + base64.b64encode(
                ("roost:" + password).encode()).decode()
        st, _, out = self.request("POST", "/v1/events/dovecot/" + q(name),
                                  token=None, raw=body, headers=headers)
        return st, out

    def lookup(self, user, protocol="imap", tag=None, token="admin"):
        path = "/v1/lookup?user=%s&protocol=%s" % (q(user), q(protocol))
        if tag is not None:
            path += "&tag=" + q(tag)
        return self.api("GET", path, token=token)

    def lookup_ok(self, user, protocol="imap", tag=None, token="admin"):
        return status(self.lookup(user, protocol, tag, token), 200,
                      "lookup %s/%s" % (user, protocol))

    def add_backend(self, name, host=None, **fields):
        self._hosts = getattr(self, "_hosts", 10) + 1
        body = {"name": name, "host": host or "127.0.0.%d" % self._hosts}
        body.update(fields)
        return status(self.api("POST", "/v1/backends", body), 201,
                      "add backend %s" % name)

    def patch_backend(self, name, **fields):
        return status(self.api("PATCH", "/v1/backends/" + q(name), fields),
                      200, "patch backend %s %r" % (name, fields))

    def backends(self):
        return status(self.api("GET", "/v1/backends"), 200,
                      "list backends")["backends"]

    def backend(self, name):
        return status(self.api("GET", "/v1/backends/" + q(name)), 200,
                      "get backend %s" % name)

    def user(self, name, tag=None):
        path = "/v1/users/" + q(name)
        if tag is not None:
            path += "?tag=" + q(tag)
        return status(self.api("GET", path), 200, "get user %s" % name)

    def all_users(self, backend=None, limit=1000):
        """Every page of GET /v1/users."""
        out, cursor = [], None
        for _ in range(100000):
            path = "/v1/users?limit=%d" % limit
            if backend is not None:
                path += "&backend=" + q(backend)
            if cursor is not None:
                path += "&cursor=" + q(cursor)
            js = status(self.api("GET", path), 200, "GET " + path)
            out.extend(js["users"])
            cursor = js.get("next_cursor")
            if cursor is None:
                return out
        raise Failure("user map pagination never ends")

    # -- roostctl

    def ctl(self, *args, url=True, token_file=True, env=None, timeout=60):
        """Run roostctl --url URL --token-file F ARGS: (rc, stdout, stderr)."""
        argv = [ROOSTCTL]
        if url is True:
            argv += ["--url", self.url]
        elif url:
            argv += ["--url", url]
        if token_file is True:
            argv += ["--token-file", self.admin_token_file]
        elif token_file:
            argv += ["--token-file", token_file]
        argv += list(args)
        e = dict(os.environ)
        e.pop("ROOST_URL", None)
        e.pop("ROOST_TOKEN_FILE", None)
        if env:
            e.update(env)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           env=e, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self.transcript.append(out + err)
        for bad in SANITIZER_MARKS:
            check(bad not in err, "roostctl %s: sanitizer report:\n%s" %
                  (" ".join(args), err))
        return p.returncode, out, err

    def secrets_absent(self, *secret_values, where="everything"):
        """No secret in the log, in any response seen so far, or in the
        store's audit."""
        log = self.log()
        for s in secret_values:
            check(s not in log, "a secret appears in roostd's log")
            for body in self.transcript:
                check(s not in body, "a secret appears in a response: %s" %
                      _short(body.replace(s, "<SECRET>")))


# ---------------------------------------------------------------- running

# ROOST_TEST_STORE=postgresql: every roostd a scenario starts without a
# store of its own runs on PostgreSQL instead of its SQLite file, each in a
# schema of its own of one cluster per scenario process (.ci/run runs the
# Dovecot scenarios once more that way).
TEST_STORE = os.environ.get("ROOST_TEST_STORE", "sqlite")
_pg_shared = {"pg": None, "schemas": 0}


def _pg_store():
    if _pg_shared["pg"] is None:
        _pg_shared["pg"] = Pg()
        atexit.register(_pg_shared["pg"].stop)
    pg = _pg_shared["pg"]
    _pg_shared["schemas"] += 1
    schema = "r%d" % _pg_shared["schemas"]
    pg.query("CREATE SCHEMA %s" % schema)
    return "postgresql:%s options='-csearch_path=%s'" % (pg.conninfo, schema)


def wait_for(what, fn, seconds=20):
    """fn()'s first true value, asked every 0.1 s; a Failure naming what
    when there is none within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise Failure("%s: not within %ds" % (what, seconds))


class Pg:
    """A throw-away PostgreSQL cluster (tests/pg/pgtmp) of one scenario, gone
    when the scenario's process ends; Skip when PostgreSQL is not
    installed.  conninfo is its libpq string, password the password in it.
    standby_of=PG makes it a streaming standby of that cluster; halt() stops
    it as a crash would, resume() starts it again on the same port; freeze()
    and thaw() stop and continue its processes."""

    PGTMP = os.path.join(TOP, "tests", "pg", "pgtmp")

    def __init__(self, standby_of=None):
        self.dir = tempfile.mkdtemp(prefix="pgtmp.", dir="/tmp")
        if standby_of is None:
            p = self._pgtmp("start", self.dir, "--owner-pid", str(os.getpid()))
        else:
            p = self._pgtmp("standby", self.dir, standby_of.dir,
                            "--owner-pid", str(os.getpid()))
        if p.returncode == 77:
            raise Skip("PostgreSQL is not installed "
                       "(scripts/install-deps installs it)")
        if p.returncode != 0:
            raise Failure("pgtmp %s: exit %d: %s" %
                          ("start" if standby_of is None else "standby",
                           p.returncode, p.stderr.decode()[-2000:]))
        self.conninfo = p.stdout.decode().strip()
        self.fields = dict(kv.split("=", 1) for kv in self.conninfo.split())
        self.password = self.fields["password"]
        self.port = int(self.fields["port"])
        psql = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
        check(psql, "psql installed with the server")
        self.psql = psql[-1]

    def _pgtmp(self, *args, timeout=90):
        return subprocess.run([self.PGTMP] + list(args), capture_output=True,
                              timeout=timeout)

    def query(self, sql):
        """Rows of one query as lists of strings (psql, unaligned)."""
        p = subprocess.run([self.psql, "-X", "-q", "-tA", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-d", self.conninfo,
                            "-c", sql], capture_output=True, timeout=30)
        if p.returncode != 0:
            raise Failure("psql %r: %s" % (sql, p.stderr.decode()))
        return [line.split("\t") for line in
                p.stdout.decode().splitlines() if line]

    def slow_commit(self, seconds, table, events, when):
        """Make each commit that wrote a row of table (events: "INSERT",
        "INSERT OR UPDATE") for which when (SQL on NEW) holds sleep that
        many seconds first, in a deferred trigger; slow_commit_ends() then
        says when each such sleep ended."""
        self.query("CREATE TABLE IF NOT EXISTS slow_done (at float8)")
        self.query("CREATE OR REPLACE FUNCTION slow_commit() RETURNS trigger"
                   " LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(%s);"
                   " INSERT INTO slow_done VALUES (extract(epoch FROM"
                   " clock_timestamp())); RETURN NULL; END $$" % seconds)
        self.query("CREATE CONSTRAINT TRIGGER slow_commit AFTER %s ON %s"
                   " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (%s)"
                   " EXECUTE FUNCTION slow_commit()" % (events, table, when))

    def slow_commit_ends(self):
        """Unix times the sleeps of slow_commit ended, oldest first."""
        return [float(row[0]) for row in
                self.query("SELECT at FROM slow_done ORDER BY at")]

    def halt(self):
        p = self._pgtmp("halt", self.dir)
        eq(p.returncode, 0, "pgtmp halt: %s" % p.stderr.decode())

    def resume(self):
        p = self._pgtmp("start", self.dir)
        eq(p.returncode, 0, "pgtmp start again: %s" % p.stderr.decode())
        eq(p.stdout.decode().strip(), self.conninfo,
           "the same connection string after a restart")

    def _processes(self):
        """The postmaster's pid, then its children's."""
        with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
            pm = int(f.readline())
        with open("/proc/%d/task/%d/children" % (pm, pm)) as f:
            return [pm] + [int(x) for x in f.read().split()]

    def freeze(self):
        """Every process of the cluster stopped (SIGSTOP): connections stay
        open and the kernel still acknowledges what is sent, but nothing
        answers, as with a hung server or a network that drops replies."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def promote(self):
        p = self._pgtmp("promote", self.dir)
        eq(p.returncode, 0, "pgtmp promote: %s" % p.stderr.decode())

    def stop(self):
        self._pgtmp("stop", self.dir, timeout=60)


def on_pg(t, scenario, servers=dict):
    """scenario(t, pg, made) on a cluster of its own, made = servers() (a
    dict of fakes with close()).  On success every roostd still running
    must stop on SIGTERM with exit 0 before the cluster goes (a sanitizer
    build reports leaks then); whatever happens, the daemons, the fakes
    and the cluster are gone after."""
    pg = Pg()
    made = {}
    try:
        made = servers()
        scenario(t, pg, made)
        for r in t.roosts:
            if r.alive():
                eq(r.kill(signal.SIGTERM), 0, "exit status on SIGTERM")
    finally:
        for r in t.roosts:
            r.stop()
        for s in made.values():
            s.close()
        pg.stop()


def roles(r):
    """The roles roostd r holds (several roostd on one store)."""
    return set(status(r.api("GET", "/v1/status"), 200, "status")
               ["roles"]["held"])


def status_samples(r, field, seconds, every=0.05):
    """GET /v1/status every `every` s for `seconds`: the values of its
    field, in order (what waits on the store while something hangs)."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.append(status(r.api("GET", "/v1/status"), 200,
                           "status").get(field))
        time.sleep(every)
    return seen


def repl_settled(r):
    """No replication sync queued or running."""
    js = status(r.api("GET", "/v1/replication"), 200, "replication")
    return js["running"] == 0 and not any(js["queued"].values())


def lookups_until(r, users, where, until, out):
    """Look users up in turn on a connection of its own until until()
    holds (a thread's work while the store is made to hang); out gets
    n (lookups made), slowest (seconds) and wrong (answers not 200 with
    where[user])."""
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
    slowest, wrong, n = 0.0, [], 0
    try:
        while not until():
            u = users[n % len(users)]
            n += 1
            t0 = time.monotonic()
            c.request("GET", "/v1/lookup?user=%s&protocol=imap" % q(u),
                      headers={"Authorization": "Bearer " + r.admin_token})
            resp = c.getresponse()
            body = json.loads(resp.read())
            slowest = max(slowest, time.monotonic() - t0)
            if resp.status != 200 or body.get("backend") != where[u]:
                wrong.append((u, resp.status, body))
    finally:
        c.close()
    out.update(slowest=slowest, wrong=wrong, n=n)


def lookup_timed(r, user, out):
    """One lookup of user on a connection of its own (for a thread): out
    [user] gets (status, JSON body, time.time() of the answer)."""
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
    try:
        c.request("GET", "/v1/lookup?user=%s&protocol=imap" % q(user),
                  headers={"Authorization": "Bearer " + r.admin_token})
        resp = c.getresponse()
        out[user] = (resp.status, json.loads(resp.read()), time.time())
    finally:
        c.close()


def lookups_timed(r, users, where, stop, answers, wrong):
    """Look users up in turn until stop (an Event) is set: answers gets
    the wall time (time.time()) of each answer, to set beside the
    store's own clock; wrong the answers not 200 with where[user]."""
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
    n = 0
    try:
        while not stop.is_set():
            u = users[n % len(users)]
            n += 1
            c.request("GET", "/v1/lookup?user=%s&protocol=imap" % q(u),
                      headers={"Authorization": "Bearer " + r.admin_token})
            resp = c.getresponse()
            body = json.loads(resp.read())
            answers.append(time.time())
            if resp.status != 200 or body.get("backend") != where[u]:
                wrong.append((u, resp.status, body))
    finally:
        c.close()


def connect_many(port, n):
    """n loopback connections to port, opened before they are needed: a
    burst of requests on them then reaches the server at once (hundreds
    of connects at once can overflow the listen backlog, and a dropped
    SYN costs a second)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=30)
            for _ in range(n)]


def read_closed(s):
    """(status or None, body bytes, time.time() at the end) of the one
    answer on s, read until the server closes it (Connection: close)."""
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if not data:
        return None, b"", time.time()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, time.time()


def pg_roost_known(t, pg, n=20):
    """roostd on cluster pg with backends b1 and b2 and n known users
    placed: (roostd, their names, their backends by name)."""
    r = t.roost(store="postgresql:" + pg.conninfo)
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    known = ["known%02d" % i for i in range(n)]
    return r, known, {u: r.lookup_ok(u)["backend"] for u in known}


@contextlib.contextmanager
def stopped(pids, hold=0.0):
    """The server processes pids stopped for the with block (SIGSTOP:
    connected and silent, as a hung server would be), and at least hold
    seconds from its start."""
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    end = time.monotonic() + hold
    try:
        yield
        time.sleep(max(0.0, end - time.monotonic()))
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)


@contextlib.contextmanager
def looking_up(r, users, where):
    """Another thread looks users up in turn (lookups_timed) for the
    with block; yields (answers, wrong) as that fills them."""
    import threading
    stop = threading.Event()
    answers, wrong = [], []
    th = threading.Thread(target=lookups_timed,
                          args=(r, users, where, stop, answers, wrong))
    th.start()
    try:
        yield answers, wrong
    finally:
        stop.set()
        th.join(30)


def flush_fakes(key):
    """Fake doveadm APIs for b1, b2 and proxy p1 (flush_under_slow_commits'
    servers, for on_pg)."""
    from fakedoveadm import FakeDoveadm
    return {n: FakeDoveadm(a, key) for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
             ("p1", "127.0.0.1"))}


def flush_under_slow_commits(r, pg, fakes, key, slow_s, events, when,
                             n=12, edge_s=0.05):
    """A flush of n users from b1 to b2 (roostd r on PostgreSQL pg, fake
    doveadm APIs fakes for b1, b2 and proxy p1 with key) while commits
    that write a row of moves (events, when: as slow_commit) sleep slow_s
    each, and another thread looks known users up.  Checks that every
    known user kept its backend, every mover ended on b2, every move and
    the job are done in the store; returns (lookups, slow commits,
    answers inside a sleep: between its start and end, as PostgreSQL's
    clock says, edge_s from each edge)."""
    import threading
    for i, b in enumerate(("b1", "b2")):
        r.add_backend(b, "127.0.0.%d" % (11 + i),
                      doveadm={"url": fakes[b].url, "api_key": key})
    eq(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": fakes["p1"].url, "api_key": key}})[0], 201, "proxy")
    for i in range(n):
        eq(r.api("PUT", "/v1/users/" + q("mover%02d" % i),
                 {"backend": "b1"})[0], 200, "pin to b1")
    known = ["known%02d" % i for i in range(10)]
    for u in known:
        eq(r.api("PUT", "/v1/users/" + q(u), {"backend": "b2"})[0], 200,
           "pin to b2")
    where = {u: "b2" for u in known}
    pg.slow_commit(slow_s, "moves", events, when)

    stop = threading.Event()
    answers, wrong = [], []
    th = threading.Thread(target=lookups_timed,
                          args=(r, known, where, stop, answers, wrong))
    th.start()
    try:
        st, js = r.api("POST", "/v1/backends/b1/flush", {})
        eq(st, 202, "flush of b1: %r" % (js,))
        wait_for("b1 empty", lambda: not [
            u for u in r.all_users("b1") if u["user"].startswith("mover")],
            seconds=60)
    finally:
        stop.set()
        th.join(30)
    eq(wrong, [], "known users answered with their backend")
    ends = wait_for("the slow commits", pg.slow_commit_ends)
    inside = sum(1 for a in answers for e in ends
                 if e - slow_s + edge_s < a < e - edge_s)
    for i in range(n):
        eq(r.lookup_ok("mover%02d" % i)["backend"], "b2",
           "mover%02d after the flush" % i)
    wait_for("every move done in the store", lambda: pg.query(
        "SELECT count(*) FROM moves WHERE state <> 'done'")[0][0] == "0",
        seconds=30)
    wait_for("the job over with its count", lambda: pg.query(
        "SELECT state, made FROM move_jobs") == [["done", str(n)]],
        seconds=30)
    return len(answers), len(ends), inside


def store_session_pids(pg):
    """The server processes of the roostd store sessions (not the feed's)
    of cluster pg."""
    return [int(p) for (p,) in pg.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name ="
        " 'roostd'")]


def role_holder(rs, role):
    """The one live instance of rs holding role, or None; a Failure when
    several hold it at once."""
    held = [r for r in rs if r.alive() and role in roles(r)]
    check(len(held) <= 1, "role %s held by %d instances at once" %
          (role, len(held)))
    return held[0] if held else None


def pg_multi_host(*pgs):
    """One libpq connection string naming every cluster, in order, that
    connects only to the one that takes writes (a promoted standby)."""
    f = pgs[0].fields
    return ("host=%s port=%s user=%s password=%s dbname=%s "
            "connect_timeout=2 target_session_attrs=read-write" % (
                ",".join(p.fields["host"] for p in pgs),
                ",".join(str(p.port) for p in pgs), f["user"],
                f["password"], f["dbname"]))


class Test:
    """Per-scenario state: temp dirs and the daemons started in them."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="roosttest.")
        self.roosts = []

    def roost(self, start=True, **kw):
        tmp = tempfile.mkdtemp(prefix="r%d." % len(self.roosts), dir=self.base)
        r = Roost(tmp, **kw)
        self.roosts.append(r)
        _instances.append(r)
        if start:
            r.start()
        return r

    def cleanup(self, keep=False):
        for r in self.roosts:
            r.stop()
        if not keep:
            shutil.rmtree(self.base, ignore_errors=True)


def _kill_all():
    for r in _instances:
        r.stop()


atexit.register(_kill_all)


def _on_signal(signum, frame):
    _kill_all()
    sys.exit(128 + signum)


def run(fn):
    """Run a scenario: fn(Test).  Exit 0 on success, 1 on failure (with the
    traceback and each daemon's log tail), 77 when skipped."""
    signal.signal(signal.SIGTERM, _on_signal)
    if not (os.access(ROOSTD, os.X_OK) and os.access(ROOSTCTL, os.X_OK)):
        print("roostd or roostctl missing in %s" % BUILD)
        sys.exit(1)
    t = Test()
    rc = 0
    try:
        fn(t)
        # The daemon never crashes on input: each one still started must be
        # running at the end, and stop cleanly on SIGTERM (under a
        # sanitizer build that is also when leaks are reported).
        for r in t.roosts:
            if r.proc is not None and r.proc.returncode is None:
                check(r.alive(), "roostd (%s) died during the scenario, "
                      "exit %r" % (r.tmp, r.proc.poll()))
                eq(r.kill(signal.SIGTERM), 0,
                   "roostd exit status after the final SIGTERM")
        for r in t.roosts:
            log = r.log()
            for bad in SANITIZER_MARKS:
                check(bad not in log, "roostd's log has a sanitizer "
                      "report (%s)" % bad)
    except Skip as e:
        print("SKIP: %s" % e)
        rc = SKIP
    except Exception:
        traceback.print_exc(file=sys.stdout)
        for r in t.roosts:
            print("--- roostd log tail (%s) ---" % r.log_path)
            print(r.log_tail())
        rc = 1
    finally:
        t.cleanup(keep=(rc == 1 and os.environ.get("ROOST_KEEP") == "1"))
    sys.stdout.flush()
    sys.exit(rc)
