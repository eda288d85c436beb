"""The README's first command, `scripts/demo start`, brings Roost up in
front of a real local Dovecot, on SQLite and with STORE=postgresql (a
private PostgreSQL cluster and two roostd, the proxy listing both).  Each
time it says Roost is up; alice logs in through the proxy's IMAP with the
demo's password and finds the message the demo delivered through the
proxy's LMTP; every demo user has a backend, the same from both roostd on
PostgreSQL; `scripts/demo stop` leaves nothing of it running."""

import http.client
import imaplib
import json
import os
import re
import subprocess

import roosttest as rt
from roosttest import check, eq

DEMO_PORT = 29980               # roostd; the second one on PostgreSQL +1
DEMO_BASE = 30000               # the demo's Dovecot: base + 10 per instance
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")


def demo(env, verb):
    p = subprocess.run([os.path.join(rt.TOP, "scripts", "demo"), verb],
                       env=env, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def lookup(port, token, user):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/v1/lookup?user=%s&protocol=imap" % rt.q(user),
                  headers={"Authorization": "Bearer " + token})
        resp = c.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        c.close()


def running(d):
    """Processes whose command line names the demo's directory."""
    p = subprocess.run(["pgrep", "-af", d], capture_output=True, text=True)
    return [x for x in p.stdout.splitlines() if "pgrep" not in x]


def one_store(t, store):
    d = os.path.join(t.base, "demo-" + store)
    # The demo's Dovecot users reach its rig below d (mkdtemp made 0700).
    os.chmod(t.base, 0o711)
    env = dict(os.environ, ROOST_DEMO_DIR=d, STORE=store,
               ROOST_DEMO_PORT=str(DEMO_PORT),
               ROOST_DEMO_BASE_PORT=str(DEMO_BASE))
    rc, out, err = demo(env, "start")
    try:
        eq(rc, 0, "demo start (%s): %s" % (store, err[-2000:]))
        check("Roost is up" in out, "demo start says Roost is up:\n" + out)
        m = re.search(r"proxy on 127\.0\.0\.1: imap (\d+)", out)
        check(m is not None, "demo start names the proxy's IMAP port")
        with open(os.path.join(d, "admin.token")) as f:
            token = f.read().strip()
        ports = [DEMO_PORT] + ([DEMO_PORT + 1] if store == "postgresql"
                               else [])
        for u in USERS:
            answers = [lookup(p, token, u) for p in ports]
            for st, js in answers:
                eq(st, 200, "%s: lookup of %s: %r" % (store, u, js))
            eq(len({js["backend"] for st, js in answers}), 1,
               "%s: one backend for %s from every roostd" % (store, u))
        imap = imaplib.IMAP4("127.0.0.1", int(m.group(1)), timeout=15)
        try:
            imap.login("alice", "pass")
            imap.select("INBOX")
            typ, data = imap.search(None, "SUBJECT", '"hello from the demo"')
            eq(typ, "OK", "search through the proxy")
            check(data[0].split(), "%s: the demo's message in alice's "
                  "INBOX through the proxy" % store)
            imap.logout()
        finally:
            try:
                imap.shutdown()
            except OSError:
                pass
        print("%s: demo up, %d users placed, alice read her message" %
              (store, len(USERS)))
    finally:
        rc, out, err = demo(env, "stop")
    eq(rc, 0, "demo stop (%s): %s" % (store, err[-2000:]))
    rt.wait_for("nothing of the %s demo running" % store,
                lambda: not running(d), seconds=30)


def main(t):
    for store in ("sqlite", "postgresql"):
        one_store(t, store)


rt.run(main)
