"""A backend with a doveadm URL is probed through its doveadm HTTP API with
its key: a server that takes the key keeps it ok; one that refuses the key
(401, a rotated key) or stops answering makes it failed with an error that
names the doveadm API; it recovers when the key works again; the key is
never in the log or any answer."""

import base64
import http.server
import threading
import time

import roosttest as rt
from roosttest import check, eq

KEY = "doveadm-Key-7f3a-never-shown"
NEW_KEY = "rotated-Key-91c2-never-shown"


class FakeDoveadm:
    """A doveadm HTTP API that accepts one key (X-Dovecot-API)."""

    def __init__(self, addr):
        self.key = KEY
        self.silent = False
        self.seen = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self):
                fake.seen.append((self.command, self.path,
                                  self.headers.get("Authorization", "")))
                if fake.silent:
                    time.sleep(3)
                    return
                want = "X-Dovecot-API " + base64.b64encode(
                    fake.key.encode()).decode()
                if self.headers.get("Authorization") != want:
                    body, code = b"", 401
                elif self.command == "GET":
                    body, code = b'[{"command":"who","parameters":[]}]', 200
                else:
                    body, code = b'[["doveadmResponse",[],"t"]]', 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer
            do_POST = _answer

        self.server = http.server.ThreadingHTTPServer((addr, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d/doveadm/v1" % (addr, self.port)
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_health(r, name, state, seconds):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        h = r.backend(name)["health"]
        if h["state"] == state and h["checked"] is not None:
            return h
        time.sleep(0.1)
    raise rt.Failure("backend %s not %s within %ss: %r" %
                     (name, state, seconds, r.backend(name)["health"]))


NO_MAIL = {"imap": 0, "pop3": 0, "lmtp": 0, "submission": 0, "sieve": 0}


def main(t):
    fake = FakeDoveadm("127.0.0.21")
    r = t.roost(probe_interval="1s", probe_timeout="1s", probe_rise="2",
                probe_fall="2")
    r.add_backend("b1", "127.0.0.21", ports=NO_MAIL,
                  doveadm={"url": fake.url, "api_key": KEY})
    # A second backend, always healthy, so that b1 failing is not
    # "everything failed at once".
    good = FakeDoveadm("127.0.0.22")
    r.add_backend("b2", "127.0.0.22", ports=NO_MAIL,
                  doveadm={"url": good.url, "api_key": KEY})

    wait_health(r, "b1", "ok", 5)
    check(len(fake.seen) > 0, "the doveadm API was asked")
    method, path, auth = fake.seen[-1]
    eq(path, "/doveadm/v1", "the probe asks the backend's doveadm URL")
    eq(auth, "X-Dovecot-API " + base64.b64encode(KEY.encode()).decode(),
       "the probe sends the backend's key")

    # The server's key is rotated, roostd still has the old one: 401.
    fake.key = NEW_KEY
    h = wait_health(r, "b1", "failed", 6)
    check("doveadm" in h["error"] and "refused the key" in h["error"],
          "the error names the doveadm API and the key: %r" % h["error"])
    eq(h["routed"], False, "a backend whose doveadm API refuses is not "
       "handed out")
    eq(r.backend("b2")["health"]["state"], "ok", "b2 stays ok")

    # The admin gives roostd the new key: ok again after rise rounds.
    r.patch_backend("b1", doveadm={"api_key": NEW_KEY})
    wait_health(r, "b1", "ok", 6)

    # A server that accepts and never answers fails by the probe timeout.
    fake.silent = True
    h = wait_health(r, "b1", "failed", 8)
    check("doveadm" in h["error"] and "timed out" in h["error"],
          "silent doveadm API: %r" % h["error"])
    fake.silent = False

    rc, out, err = r.ctl("backend", "show", "b1")
    eq(rc, 0, "roostctl backend show")
    r.secrets_absent(KEY, NEW_KEY,
                     base64.b64encode(KEY.encode()).decode(),
                     base64.b64encode(NEW_KEY.encode()).decode())
    check(KEY not in out and NEW_KEY not in out, "no key in backend show")
    fake.close()
    good.close()


rt.run(main)
