"""Through a real Dovecot proxy, a controller that closes the connection
after every answer, one that is restarted (kill -9) between logins, and one
that hangs on some requests and answers them late: every login either lands
on the backend the user is pinned to at that moment or gets a temporary
failure, never the backend of an earlier answer.  The user is moved between
logins, so a stale or late answer would show as a login on the old backend.
The proxy log names the lookup transport in use (ROOST_LUA_TRANSPORT, else
auto, which is lua-socket where it is installed)."""
import http.client
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29700           # +100 and +200 for the later phases
USERS = ["u1", "u2", "u3"]
CONNECT_S, REQUEST_S = 0.5, 1.0
LATE_S = 1.5            # a hung request is answered this late (too late)
ROUNDS = 4              # rounds of three logins per phase


class Front:
    """A controller in front of roostd: each request is passed to roostd
    and its answer sent back, with Content-Length, as HTTP/1.1.  mode
    "drop": the connection is closed after every answer without saying so
    (no Connection: close).  mode "hang": the first request after
    hang_next is set gets roostd's answer at once, but it is sent only
    LATE_S later, on the same connection, if the client still holds it."""

    def __init__(self, roost_url, mode):
        self.target = roost_url.split("://", 1)[1]
        self.mode = mode
        self.hang_next = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.requests = 0       # lookups
        self.hung = 0
        self.late_sent = 0
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _ask_roostd(self, lines):
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                if k.lower() == "authorization":
                    headers[k] = v.strip()
        host, port = self.target.split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            c.request(method, path, headers=headers)
            r = c.getresponse()
            body = r.read()
            ctype = r.getheader("Content-Type", "application/json")
            return ("HTTP/1.1 %d X\r\nContent-Type: %s\r\n"
                          "Content-Length: %d\r\n\r\n"
                          % (r.status, ctype, len(body))).encode() + body
        finally:
            c.close()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                if not lines[0].startswith("GET /v1/lookup?"):
                    # the proxy's session events: not what is tested
                    c.sendall(b"HTTP/1.1 204 X\r\nConnection: close\r\n"
                              b"\r\n")
                    return
                self.requests += 1
                answer = self._ask_roostd(lines)
                if self.mode == "hang" and self.hang_next:
                    self.hang_next = False
                    self.hung += 1
                    time.sleep(LATE_S)
                    c.sendall(answer)      # fails if the client hung up
                    self.late_sent += 1
                    continue
                c.sendall(answer)
                if self.mode == "drop":
                    return
        except OSError:
            return
        finally:
            c.close()

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def expected_transport():
    want = os.environ.get("ROOST_LUA_TRANSPORT", "") or "auto"
    return "socket" if want == "auto" else want


def pin(r, user, backend):
    st, js = r.api("PUT", "/v1/users/" + user, {"backend": backend})
    eq((st, js.get("backend") if isinstance(js, dict) else js),
       (200, backend), "pin %s to %s" % (user, backend))


class Tally:
    """What every backend must have seen: one login per OK answer, on the
    backend the user was pinned to at the time."""

    def __init__(self, rig, what):
        self.rig = rig
        self.what = what
        self.want = {}
        self.ok = self.tempfail = 0

    def login(self, user, backend, expect):
        """expect: "OK", "TEMP" (a temporary failure) or "any" of them."""
        st, line = riglib.imap_login_from(self.rig, "p1", user,
                                          source=riglib.fresh_source(),
                                          timeout=30)
        temp = st == "NO" and "[UNAVAILABLE]" in line
        if st == "OK":
            self.ok += 1
            d = self.want.setdefault(user, {})
            d[backend] = d.get(backend, 0) + 1
        elif temp:
            self.tempfail += 1
        check((st == "OK" and expect != "TEMP") or
              (temp and expect != "OK"),
              "%s: login of %s (pinned to %s, expected %s): %s %s"
              % (self.what, user, backend, expect, st, line))

    def verify(self):
        seen = riglib.logins_by_backend(self.rig)
        for u in USERS:
            eq(seen.get(u, {}), self.want.get(u, {}),
               "%s: %s's logins per backend (seen vs. pinned)"
               % (self.what, u))


PHASES = ("drop", "restart", "hang")


def phase(t, what):
    """One rig and one roostd for one kind of trouble.  Each phase has
    ports of its own: the proxy's connections of the one before may still
    hold some of its ports in TIME_WAIT."""
    r = t.roost()
    front = None
    urls = [r.url]
    if what in ("drop", "hang"):
        front = Front(r.url, what)
        urls = [front.url]
    settings = {"connect_timeout": "%dms" % (CONNECT_S * 1000),
                "request_timeout": "%dms" % (REQUEST_S * 1000),
                "down_retry": "0"}
    try:
        with riglib.routed_rig(t, r, BASE_PORT + 100 * PHASES.index(what),
                               ",".join(USERS), roost_urls=urls,
                               lua_settings=settings) as rig:
            b1, b2 = rig.backends
            tally = Tally(rig, what)
            for u in USERS:
                pin(r, u, b1)
            t0 = time.monotonic()
            for i in range(ROUNDS):
                u = USERS[i % len(USERS)]
                # on b1; moved to b2; moved back to b1: a login after each
                tally.login(u, b1, "OK")
                pin(r, u, b2)
                if what == "restart":
                    r.restart()
                if front:
                    # hang: this login's answer (b2) comes too late
                    front.hang_next = True
                tally.login(u, b2, "TEMP" if what == "hang" else "OK")
                pin(r, u, b1)
                if what == "restart":
                    r.restart()
                # hang: a late b2 answer must not be read for this one
                tally.login(u, b1, "OK")
            took = time.monotonic() - t0
            tally.verify()
            with open(rig.inst("p1")["log"], errors="replace") as f:
                plog = f.read()
            want = "roost: lookup transport %s" % expected_transport()
            check(want in plog, "the proxy log says %r" % want)
            print("%s: %d logins OK, %d temporary failures in %.1f s%s"
                  % (what, tally.ok, tally.tempfail, took,
                     "; controller saw %d requests, %d hung"
                     % (front.requests, front.hung) if front else ""))
            if front:
                check(front.requests >= 3 * ROUNDS, "%s: the controller "
                      "saw %d requests" % (what, front.requests))
            if what == "hang":
                eq(front.hung, ROUNDS, "hang: requests held back")
        eq(r.kill(signal.SIGTERM), 0, "%s: roostd's exit on SIGTERM" % what)
    finally:
        if front:
            front.close()
        r.stop()


def main(t):
    # the controller closes after every answer
    phase(t, "drop")
    # roostd straight, killed (-9) and restarted between logins: the auth
    # workers' kept connections lead nowhere
    phase(t, "restart")
    # a controller that holds some answers back until after the timeout
    phase(t, "hang")


rt.run(main)
