"""riglib: small helpers for tests that drive a rig started by tests/rig/rig.

    import sys; sys.path.insert(0, "tests/rig"); import riglib
    rig = riglib.Rig("/tmp/myrig")            # reads DIR/rig.json
    rig.register_backends("http://127.0.0.1:8470", admin_token)
    rig.imap_login("p1", "u1")                # -> ("OK", "a OK [...] Logged in")
    rig.backends_that_saw_login("u1")         # -> ["b1"]

Only the standard library, so the test runner needs nothing installed.
"""

import base64
import contextlib
import json
import os
import re
import secrets
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

RIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rig")


class Rig:
    def __init__(self, rigdir):
        self.dir = os.path.abspath(rigdir)
        with open(os.path.join(self.dir, "rig.json")) as f:
            self.info = json.load(f)
        self.by_name = {i["name"]: i for i in self.info["instances"]}

    def inst(self, name):
        return self.by_name[name]

    @property
    def proxies(self):
        return self.info["proxies"]

    @property
    def backends(self):
        return self.info["backends"]

    def stop(self):
        subprocess.run([RIG, "stop", "--dir", self.dir], check=True)

    # roostd -------------------------------------------------------------

    def register_backends(self, roost_url, admin_token, **overrides):
        """POST every backend of the rig to roostd; overrides are merged
        into each body (e.g. tag="eu"). Returns the HTTP statuses."""
        statuses = []
        for body in self.info["roost_backends"]:
            body = dict(body, **overrides)
            req = urllib.request.Request(
                roost_url.rstrip("/") + "/v1/backends",
                data=json.dumps(body).encode(), method="POST",
                headers={"Authorization": "Bearer " + admin_token})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    statuses.append(r.status)
            except urllib.error.HTTPError as e:
                statuses.append(e.code)
        return statuses

    # protocols ----------------------------------------------------------

    def imap_login(self, name, user, password=None, timeout=15):
        """LOGIN on an instance's IMAP port, then LOGOUT. Returns
        ("OK"|"NO"|"BAD", tagged line). A temporary failure is
        ("NO", "a NO [UNAVAILABLE] ...")."""
        inst = self.inst(name)
        password = self.info["password"] if password is None else password
        with socket.create_connection(
                (inst["address"], inst["ports"]["imap"]),
                timeout=timeout) as s:
            f = s.makefile("rwb")
            f.readline()
            f.write(b"a LOGIN \"%s\" \"%s\"\r\n"
                    % (user.encode(), password.encode()))
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    return ("BYE", "")
                if line.startswith(b"a "):
                    break
            tagged = line.decode(errors="replace").strip()
            f.write(b"b LOGOUT\r\n")
            f.flush()
        return (tagged.split(" ")[1], tagged)

    def log_lines(self, name):
        """The lines of an instance's log so far ([] when it has none)."""
        try:
            with open(self.inst(name)["log"], errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def who_rows(self, backend):
        """The rows of `who` on a backend now (its doveadm HTTP API); a
        RigError when doveadm answers with an error."""
        res = self.doveadm_http(backend, "who", {})
        if res[0][0] != "doveadmResponse":
            raise RigError("who on %s: %r" % (backend, res))
        # 2.3 closes the row array after the first row of several: the
        # others follow it, before the tag.
        return list(res[0][1]) + [x for x in res[0][2:-1]
                                  if isinstance(x, dict)]

    def users_on(self, backend):
        """The users with a session on a backend now."""
        return {row["username"] for row in self.who_rows(backend)}

    def backends_that_saw_login(self, user):
        """Backends whose log shows a login of user (any protocol)."""
        pat = re.compile(r"(?:Login|Logged in): user=<%s>" % re.escape(user))
        seen = []
        for b in self.backends:
            try:
                with open(self.inst(b)["log"], errors="replace") as f:
                    if pat.search(f.read()):
                        seen.append(b)
            except OSError:
                pass
        return seen

    def restart(self, *names, kill=False, start=True):
        """Stop instances (SIGTERM; kill=True: SIGKILL of every process,
        as a crash) and, with start, start them again."""
        argv = [RIG, "restart", "--dir", self.dir]
        if kill:
            argv.append("--kill")
        if not start:
            argv.append("--no-start")
        r = subprocess.run(argv + list(names), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RigError("rig restart %s failed:\n%s" %
                           (" ".join(names), r.stderr[-2000:]))
        with open(os.path.join(self.dir, "rig.json")) as f:
            self.info = json.load(f)
        self.by_name = {i["name"]: i for i in self.info["instances"]}

    # doveadm ------------------------------------------------------------

    def doveadm(self, name, *args, check=False):
        """doveadm for one instance (through chroot on 2.4)."""
        return subprocess.run(self.inst(name)["doveadm_cmd"] + list(args),
                              capture_output=True, text=True, check=check)

    def doveadm_http(self, name, command, params, tag="t"):
        """One command over the doveadm HTTP API. Returns the decoded
        answer, e.g. [["doveadmResponse", [...], "t"]]."""
        inst = self.inst(name)
        key = base64.b64encode(inst["doveadm_api_key"].encode()).decode()
        req = urllib.request.Request(
            inst["doveadm_url"],
            data=json.dumps([[command, params, tag]]).encode(),
            method="POST",
            headers={"Authorization": "X-Dovecot-API " + key,
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def _fetch(self, backend, user, fields, mailbox=None):
        """doveadm -f json fetch on one backend: a list of dicts."""
        query = ["mailbox", mailbox, "all"] if mailbox else ["all"]
        r = self.doveadm(backend, "-f", "json", "fetch", "-u", user,
                         " ".join(fields), *query)
        if r.returncode != 0:
            raise RigError("doveadm fetch on %s for %s: exit %d: %s" %
                           (backend, user, r.returncode, r.stderr.strip()))
        return json.loads(r.stdout or "[]")

    def message_ids(self, backend, user, mailbox=None):
        """Message-ID header values of user's messages on one backend, in
        every mailbox (or only in mailbox), sorted, duplicates kept: what
        replication tests compare between a primary and its replica.
        Asked with doveadm fetch on that backend itself; a user without
        mail there gives [] (an unknown user raises RigError)."""
        return sorted(m["hdr.message-id"] for m in
                      self._fetch(backend, user,
                                  ["mailbox", "hdr.message-id"], mailbox))

    def flags(self, backend, user, mailbox="INBOX"):
        """{Message-ID: sorted list of flags} for user's messages in one
        mailbox on one backend. \\Recent is left out (it belongs to a
        session, and dsync does not carry it)."""
        out = {}
        for m in self._fetch(backend, user, ["hdr.message-id", "flags"],
                             mailbox):
            out[m["hdr.message-id"]] = sorted(
                f for f in m["flags"].split() if f != "\\Recent")
        return out

    def sink_messages(self):
        """Messages that reached the SMTP sink (Submission relay), oldest
        first, as bytes."""
        d = self.info["smtp_sink"]["dir"]
        out = []
        for n in sorted(os.listdir(d)):
            if n.endswith(".eml"):
                with open(os.path.join(d, n), "rb") as f:
                    out.append(f.read())
        return out


# scenarios ------------------------------------------------------------
# Helpers for tests/integration/test_dovecot_*.py: start a rig for the
# version in $ROOST_DOVECOT and always take it down again, and speak the
# protocols a user would, through a proxy.



class RigError(Exception):
    pass


def dovecot_version():
    """The Dovecot version a scenario runs against (tests/run.py sets
    ROOST_DOVECOT to 2.3 or 2.4)."""
    v = os.environ.get("ROOST_DOVECOT", "2.3")
    if v not in ("2.3", "2.4"):
        raise RigError("ROOST_DOVECOT=%r: want 2.3 or 2.4" % v)
    return v


@contextlib.contextmanager
def running_rig(rigdir, roost_urls, base_port, version=None, backends=2,
                proxies=1, users="20", lookup_token_file=None,
                events_token_file=None,
                lua_settings=None, timeout=240):
    """Start a rig in rigdir and yield its Rig; whatever happens, stop
    what it started and remove what it made (the 2.4 root too).
    roost_urls: a list of controller base URLs, tried in order.
    lua_settings: more roost.lua settings for the proxies, e.g.
    {"request_timeout": "1s"} (written to their extra.conf)."""
    version = version or dovecot_version()
    if os.geteuid() != 0:
        raise RigError("the Dovecot rig needs root")
    # 2.3 reads the rig's files as the dovecot user: every directory above
    # rigdir must be searchable (mkdtemp makes 0700 ones).
    p = os.path.abspath(rigdir)
    while True:
        p = os.path.dirname(p)
        if p == "/":
            break
        if p.startswith(tempfile_root()):
            os.chmod(p, os.stat(p).st_mode | 0o711)
    argv = [RIG, "start", "--version", version, "--dir", rigdir,
            "--backends", str(backends), "--proxies", str(proxies),
            "--roost-url", ",".join(roost_urls), "--users", str(users),
            "--base-port", str(base_port)]
    if lookup_token_file:
        argv += ["--lookup-token-file", lookup_token_file]
    if events_token_file:
        argv += ["--events-token-file", events_token_file]
    for k, v in sorted((lua_settings or {}).items()):
        argv += ["--lua-setting", "%s=%s" % (k, v)]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RigError("rig start (%s) failed:\n%s" %
                           (version, r.stderr[-3000:]))
        rig = Rig(rigdir)
        try:
            yield rig
        except BaseException as exc:
            # first, so that an excerpt of a long output still shows it
            print("--- failed: %s: %s" % (type(exc).__name__, exc))
            for inst in rig.info["instances"]:
                print("--- %s log tail (%s) ---" % (inst["name"],
                                                  inst["log"]))
                print(_tail(inst["log"], 25))
            raise
    finally:
        # also after a failed or timed-out start: whatever it began
        if os.path.exists(os.path.join(rigdir, "rig.json")):
            subprocess.run([RIG, "destroy", "--dir", rigdir],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120)


def _tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "(%s)" % e


def tempfile_root():
    return os.path.abspath(tempfile.gettempdir()) + os.sep


def unique_message(subject="roost test", sender="t@example.com",
                   to="u@example.com"):
    """(message-id, message bytes with CRLF line ends)."""
    mid = "<%s@roost.test>" % secrets.token_hex(12)
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n"
           "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nhello %s\r\n"
           % (sender, to, subject, mid, mid))
    return mid, msg.encode()


class Imap:
    """A small IMAP client on one instance, for LOGIN/APPEND/NOOP."""

    def __init__(self, rig, name, timeout=15, source=None):
        """source: a loopback address to connect from.  Dovecot delays
        every login from an address that just failed one (auth penalty,
        up to 15 s), so a test that expects failures gives each failing
        login an address of its own."""
        inst = rig.inst(name)
        self.rig = rig
        self.sock = socket.create_connection(
            (inst["address"], inst["ports"]["imap"]), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.f = self.sock.makefile("rwb")
        self.greeting = self.f.readline()
        self.n = 0

    def cmd(self, text, literal=None):
        """Send one command; returns (status, tagged line, untagged lines).
        status is "BYE" when the server closed the connection."""
        self.n += 1
        tag = b"c%d" % self.n
        if literal is not None:
            self.f.write(tag + b" " + text.encode() +
                         b" {%d}\r\n" % len(literal))
            self.f.flush()
            line = self.f.readline()
            if not line.startswith(b"+"):
                return (line.split(b" ")[1].decode() if line else "BYE",
                        line.decode(errors="replace").strip(), [])
            self.f.write(literal + b"\r\n")
        else:
            self.f.write(tag + b" " + text.encode() + b"\r\n")
        self.f.flush()
        untagged = []
        for _ in range(100000):
            line = self.f.readline()
            if not line:
                return ("BYE", "", untagged)
            s = line.decode(errors="replace").rstrip("\r\n")
            if line.startswith(tag + b" "):
                return (s.split(" ")[1], s, untagged)
            untagged.append(s)
        raise RigError("IMAP: no tagged answer")

    def login(self, user, password=None):
        password = self.rig.info["password"] if password is None \
            else password
        return self.cmd('LOGIN "%s" "%s"' % (user, password))

    def append(self, message, mailbox="INBOX"):
        return self.cmd("APPEND %s" % mailbox, literal=message)

    def rest(self):
        """Everything the server still sends until it closes (bounded by
        the socket timeout), e.g. the BYE of a kicked session."""
        out = b""
        try:
            while True:
                line = self.f.readline()
                if not line:
                    break
                out += line
        except OSError:
            pass
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def lmtp_deliver(rig, user, proxy="p1", subject=None, tries=3):
    """One LMTP delivery to user through an instance (a proxy routes it
    to the user's backend); returns its Message-ID.  A temporary failure
    is tried again, as an MTA would: 2.3's lmtp can panic when fcntl()
    reports a deadlock with a dsync of the same user
    (dovecot.list.index.log, "Resource deadlock avoided"), and the proxy
    then answers 451.  Anything else raises RigError."""
    inst = rig.inst(proxy)
    mid, msg = unique_message(subject=subject or "lmtp " + user, to=user)
    for attempt in range(tries):
        m = smtplib.LMTP(inst["address"], inst["ports"]["lmtp"], timeout=15)
        try:
            m.ehlo("roosttest")
            refused = m.sendmail("s@example.com", [user], msg)
            if refused:
                raise RigError("LMTP to %s refused: %r" % (user, refused))
            return mid
        except smtplib.SMTPResponseException as e:
            if not 400 <= e.smtp_code < 500 or attempt == tries - 1:
                raise RigError("LMTP to %s: %d %r" % (user, e.smtp_code,
                                                      e.smtp_error))
            print("%s: LMTP %d %r, delivered again" % (user, e.smtp_code,
                                                       e.smtp_error))
            time.sleep(0.2)
        finally:
            try:
                m.quit()
            except smtplib.SMTPException:
                pass
    raise RigError("LMTP to %s: no attempt left" % user)


def imap_login_from(rig, name, user, password=None, source=None,
                    timeout=15):
    """LOGIN then LOGOUT on an instance, connecting from source;
    returns (status, tagged line), ("BYE", "") if the server hung up."""
    c = Imap(rig, name, timeout=timeout, source=source)
    try:
        st = c.login(user, password)
        if st[0] == "OK":
            c.cmd("LOGOUT")
        return st[:2]
    finally:
        c.close()


_next_source = [0]


def fresh_source():
    """A loopback source address no earlier call returned (127.0.100.x up,
    then 127.0.101.x ...), for logins that are expected to fail."""
    _next_source[0] += 1
    n = _next_source[0]
    return "127.0.%d.%d" % (100 + n // 250, 1 + n % 250)


def hold_imap_session(rig, proxy, user, hold_s, out, key):
    """Log user in over IMAP through proxy, hold the session hold_s
    seconds (a NOOP first), log out; out[key] = the login's status, or
    "error ..." when the connection failed (kicked sessions end so)."""
    c = Imap(rig, proxy, timeout=20)
    try:
        out[key] = c.login(user)[0]
        if out[key] == "OK":
            c.cmd("NOOP")
            time.sleep(hold_s)
            c.cmd("LOGOUT")
    except OSError as e:
        out[key] = "error %s" % e
    finally:
        c.close()


def imap_append(rig, proxy, user, message, password=None):
    """LOGIN, APPEND to INBOX, LOGOUT through an instance. Returns the
    (status, tagged line) of the first step that was not OK, else of the
    APPEND."""
    c = Imap(rig, proxy)
    try:
        st = c.login(user, password)
        if st[0] != "OK":
            return st[:2]
        st = c.append(message)
        c.cmd("LOGOUT")
        return st[:2]
    finally:
        c.close()


def messages_with_id(rig, backend, user, message_id, mailbox="INBOX"):
    """How many messages in user's mailbox on one backend carry this
    Message-ID, asked with doveadm search on that backend itself."""
    r = rig.doveadm(backend, "search", "-u", user, "mailbox", mailbox,
                    "header", "Message-ID", message_id)
    if r.returncode != 0:
        # A user that never got mail there may have no INBOX yet.
        if "Mailbox doesn't exist" in r.stderr or \
                "doesn't exist" in r.stderr:
            return 0
        raise RigError("doveadm search on %s for %s: exit %d: %s" %
                       (backend, user, r.returncode, r.stderr.strip()))
    return len([ln for ln in r.stdout.splitlines() if ln.strip()])


def where_is_message(rig, user, message_id, mailbox="INBOX"):
    """{backend: count} for every backend of the rig."""
    return {b: messages_with_id(rig, b, user, message_id, mailbox)
            for b in rig.backends}


LOGIN_RE = re.compile(r"(?:Login|Logged in): user=<([^>]*)>")


@contextlib.contextmanager
def routed_rig(t, roost, base_port, users, **rig_kw):
    """A rig in t.base whose proxies ask `roost` (a roosttest roostd), with
    the rig's backends registered in it; yields the Rig.  rig_kw go to
    running_rig (roost_urls defaults to [roost.url])."""
    urls = rig_kw.pop("roost_urls", [roost.url])
    # the proxies' session events reach roostd when it takes them
    rig_kw.setdefault("events_token_file", roost.events_token_file)
    with running_rig(os.path.join(t.base, "rig"), urls, base_port,
                     users=users, **rig_kw) as rig:
        got = rig.register_backends(roost.url, roost.admin_token)
        if got != [201] * len(rig.backends):
            raise RigError("registering the backends: HTTP %r" % got)
        yield rig


def asked(fn, *args):
    """fn(*args) (a doveadm question to a backend), asked again when
    doveadm tripped over a dsync of the same user running there: 2.3's
    doveadm panics when fcntl() reports a deadlock with the dsync or LMTP
    process writing the user's index ("Resource deadlock avoided"), and
    exits 65 when dsync creates the mailbox it was opening ("Mailbox
    already exists")."""
    for attempt in range(5):
        try:
            return fn(*args)
        except RigError as e:
            if ("deadlock" not in str(e) and
                    "Mailbox already exists" not in str(e)) or attempt == 4:
                raise
            time.sleep(0.1)


def enter_routed_rig(stack, t, roost, base_port, users, **kw):
    """routed_rig entered on stack (a contextlib.ExitStack), on base_port
    or else base_port + 50: a port a client of another test used can
    linger in TIME-WAIT for a minute."""
    for attempt in range(10):
        base = base_port + 50 * (attempt % 2)
        try:
            return stack.enter_context(routed_rig(t, roost, base, users,
                                                  **kw))
        except RigError as e:
            if "is in use" not in str(e) or attempt == 9:
                raise
            print("base port %d: %s" % (base, str(e).splitlines()[-1]))
            if attempt % 2:
                time.sleep(15)
    raise RigError("no base port for the rig")


def logins_by_backend(rig, settle=0.3, limit=5.0):
    """{user: {backend: number of login lines}} from every backend log.

    Dovecot's log process writes a login line after the client already has
    its OK, so the logs are read until two reads `settle` seconds apart
    agree (at most `limit` seconds)."""
    end = time.monotonic() + limit
    last = _logins_now(rig)
    while time.monotonic() < end:
        time.sleep(settle)
        now = _logins_now(rig)
        if now == last:
            break
        last = now
    return last


def _logins_now(rig):
    out = {}
    for b in rig.backends:
        try:
            with open(rig.inst(b)["log"], errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        for m in LOGIN_RE.finditer(text):
            d = out.setdefault(m.group(1), {})
            d[b] = d.get(b, 0) + 1
    return out


def wait_for(pred, seconds=10, step=0.05):
    """Poll pred() until it is true or seconds pass; returns its last
    value."""
    end = time.monotonic() + seconds
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def home_of(rig, backend, user):
    """The user's home directory on a backend, as a host path."""
    return os.path.join(rig.inst(backend)["mail_dir"], user)


def files_named(top, name):
    """Paths of files called name anywhere under top."""
    found = []
    for d, _, files in os.walk(top):
        if name in files:
            found.append(os.path.join(d, name))
    return found


def kick_argv(version, backend):
    """doveadm arguments that kick the sessions a proxy sends to backend."""
    f = ["-f", "user_roost_backend", backend]
    return (["kick"] if version == "2.4" else ["proxy", "kick"]) + f
