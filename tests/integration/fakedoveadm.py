"""A fake doveadm HTTP API on loopback for scenarios without Dovecot: it
checks the API key, records every command, answers `kick` and `who` from
a table of sessions the test controls, answers `sync` with a new state (or
the exit code the test sets for that user), and can be told to hang, or
to hold one user's syncs for a while (sync_delay) and to note any two
syncs of one user under way at once (overlaps) for clients still
connected: a client that goes away ends its sync."""

import base64
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeDoveadm:
    def __init__(self, addr, key, version="2.4", kick_delay=0.0):
        """version "2.3": kick refuses passdbField (as 2.3 does) and
        proxyKick takes it; kick_delay: seconds before a kick answers."""
        self.key = key
        self.version = version
        self.kick_delay = kick_delay
        self.sessions = {}		# user -> number of sessions
        self.sticky = set()		# users whose sessions survive a kick
        self.sync_exit = {}		# user -> exit code of its syncs
        self.calls = []			# (command, params)
        self.call_at = []		# time.time() of each call
        self.hang = False
        self.sync_delay = {}		# user -> seconds its syncs take
        self.syncing = {}		# user -> syncs under way
        self.overlaps = []		# users seen in two syncs at once
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _auth_ok(self):
                want = "X-Dovecot-API " + base64.b64encode(
                    fake.key.encode()).decode()
                return self.headers.get("Authorization") == want

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if not self._auth_ok():
                    return self._send(401, {"error": "auth"})
                self._send(200, [{"command": "kick"}, {"command": "who"}])

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"[]")
                if fake.hang:
                    time.sleep(30)
                    return
                if not self._auth_ok():
                    return self._send(401, {"error": "auth"})
                out = []
                if fake.kick_delay and any(c[0] in ("kick", "proxyKick")
                                           for c in body):
                    time.sleep(fake.kick_delay)
                for cmd, params, tag in body:
                    user = params.get("user") if cmd == "sync" else None
                    if isinstance(user, list):
                        user = user[0] if user else None
                    with fake.lock:
                        fake.calls.append((cmd, params))
                        fake.call_at.append(time.time())
                    if user is not None and not fake._sync_hold(user,
                                                                self):
                        return		# the client went away
                    with fake.lock:
                        out.append(fake._answer(cmd, params, tag))
                    if user is not None:
                        with fake.lock:
                            fake.syncing[user] -= 1
                self._send(200, out)

        self.httpd = ThreadingHTTPServer((addr, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://%s:%d/doveadm/v1" % (addr,
                                                self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _sync_hold(self, user, handler):
        """Count the user's sync as under way and hold it sync_delay
        seconds; False (and no longer under way) when the client closed
        its connection meanwhile."""
        with self.lock:
            n = self.syncing.get(user, 0) + 1
            self.syncing[user] = n
            if n > 1:
                self.overlaps.append(user)
        end = time.monotonic() + self.sync_delay.get(user, 0)
        conn = handler.connection
        while time.monotonic() < end and self.sync_delay.get(user, 0):
            r, _, _ = select.select([conn], [], [], 0.05)
            if r:
                try:
                    gone = conn.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    with self.lock:
                        self.syncing[user] -= 1
                    return False
        return True

    def _answer(self, cmd, params, tag):
        users = params.get("mask") or params.get("user") or []
        if isinstance(users, str):
            users = [users]
        if cmd == "kick" and "passdbField" in params and \
                self.version == "2.3":
            return ["error", {"type": "invalidRequest", "exitCode": 0}, tag]
        if (cmd == "kick" and "passdbField" in params) or \
                (cmd == "proxyKick" and self.version == "2.3"):
            return ["doveadmResponse", [{"count": "0"}], tag]
        if cmd == "kick":
            if "*" in users:		# a mask matching everybody
                users = list(self.sessions)
            hit = [u for u in users if self.sessions.get(u)]
            for u in hit:
                if u not in self.sticky:
                    self.sessions.pop(u, None)
            if not hit:
                return ["error", {"type": "exitCode", "exitCode": 68}, tag]
            return ["doveadmResponse", [{"result": u} for u in hit], tag]
        if cmd == "who":
            rows = [{"username": u, "connections": n, "service": "imap",
                     "pids": [], "ips": []}
                    for u, n in self.sessions.items()
                    if n and (not users or u in users)]
            return ["doveadmResponse", rows, tag]
        if cmd == "sync":
            code = self.sync_exit.get(users[0] if users else "")
            if code:
                return ["error", {"type": "exitCode", "exitCode": code}, tag]
            return ["doveadmResponse",
                    [{"state": "fake-state-%d" % len(self.calls)}], tag]
        return ["error", {"type": "exitCode", "exitCode": 64}, tag]

    def command_times(self, name, user):
        """time.time() of each call of command name naming user."""
        with self.lock:
            return [t for (c, p), t in zip(self.calls, self.call_at)
                    if c == name and user in json.dumps(p)]

    def commands(self, name, user=None):
        with self.lock:
            return [p for c, p in self.calls if c == name and (
                user is None or user in json.dumps(p))]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def add_fake_backends(r, fakes, key, names=("b1", "b2")):
    """Backends b1, b2, ... on 127.0.0.11, .12, ... added to roostd r, each
    with a FakeDoveadm of its own as its doveadm API (put in fakes, whose
    owner closes them)."""
    for i, n in enumerate(names):
        fakes[n] = FakeDoveadm("127.0.0.%d" % (11 + i), key)
        r.add_backend(n, "127.0.0.%d" % (11 + i),
                      ports={"imap": 10001 + i, "doveadm": 24245},
                      doveadm={"url": fakes[n].url, "api_key": key})
