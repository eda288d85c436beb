"""A real Dovecot proxy whose first controller URL accepts connections and
never answers, and whose second answers 404 HTML like a reverse proxy in
front of the wrong thing, still logs users in through the third (roostd):
the first login costs one request timeout, never "user unknown", and later
logins skip both bad URLs for down_retry."""
import http.server
import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27000
USERS = ["u%d" % i for i in range(1, 7)]
CONNECT_S, REQUEST_S, DOWN_RETRY_S = 0.5, 0.5, 30
# A login that met the hanging URL first waited for this request timeout,
# not roost.lua's default (3 s).  The margin is wide: on 2.3 that login
# also starts the auth worker, which on a loaded machine took a second.
FIRST_BOUND_S = 2.9


class Hanging:
    """Accepts TCP connections and never answers; keeps at most 64 open."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            if len(self.conns) > 64:
                self.conns.pop(0).close()

    def settle(self):
        """Wait (1 s at most) until every connection the kernel took has
        been accepted and counted."""
        for _ in range(100):
            if not select.select([self.sock], [], [], 0)[0]:
                time.sleep(0.05)    # the last accept() may still count
                return
            time.sleep(0.01)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class Foreign(http.server.BaseHTTPRequestHandler):
    """What a reverse proxy with no route says: 404, an HTML page."""
    seen = []

    def do_GET(self):
        Foreign.seen.append(self.path)
        body = b"<html><body><h1>404 Not Found</h1></body></html>\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def timed_login(rig, user):
    t0 = time.monotonic()
    st, line = riglib.imap_login_from(rig, "p1", user,
                                      source=riglib.fresh_source(),
                                      timeout=30)
    return st, line, time.monotonic() - t0


def main(t):
    r = t.roost()
    hang = Hanging()
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    hang_url = "http://127.0.0.1:%d" % hang.port
    foreign_url = "http://127.0.0.1:%d" % foreign.server_address[1]
    settings = {"connect_timeout": "%dms" % (CONNECT_S * 1000),
                "request_timeout": "%dms" % (REQUEST_S * 1000),
                "down_retry": str(DOWN_RETRY_S)}
    try:
        with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS),
                               roost_urls=[hang_url, foreign_url, r.url],
                               lua_settings=settings) as rig:
            st, line, took = timed_login(rig, USERS[0])
            print("first login: %.2f s" % took)
            eq(st, "OK", "%s: login past a hanging and a 404 URL (%s)"
               % (USERS[0], line))
            check(took < FIRST_BOUND_S, "first login took %.2f s, want under "
                  "%.1f s (the 3 s default request timeout applied?)"
                  % (took, FIRST_BOUND_S))
            hang.settle()
            check(hang.accepted >= 1 and len(Foreign.seen) >= 1,
                  "both bad URLs were asked first (hanging: %d connections, "
                  "404: %d requests)" % (hang.accepted, len(Foreign.seen)))
            check(took >= REQUEST_S * 0.8, "first login took %.2f s: it did "
                  "not wait for the hanging URL's request timeout" % took)

            # within down_retry both bad URLs are asked last: roostd first
            asked = (hang.accepted, len(Foreign.seen))
            for u in USERS[1:4]:
                st, line, took = timed_login(rig, u)
                eq(st, "OK", "%s: later login (%s)" % (u, line))
            hang.settle()
            eq((hang.accepted, len(Foreign.seen)), asked,
               "(hanging connections, 404 requests) during down_retry")

            placed = {u: r.user(u)["backend"] for u in USERS[:4]}
            seen = riglib.logins_by_backend(rig)
            for u, b in placed.items():
                eq(seen.get(u), {b: 1}, "%s: logged in once, on %s" % (u, b))
            with open(rig.inst("p1")["log"], errors="replace") as f:
                plog = f.read()
            check(foreign_url in plog and "not a roostd answer" in plog,
                  "the proxy log names the URL that is not roostd")
    finally:
        foreign.shutdown()
        foreign.server_close()
        hang.close()


rt.run(main)
