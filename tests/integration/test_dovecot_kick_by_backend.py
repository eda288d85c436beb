"""`doveadm kick -f user_roost_backend B` on a real Dovecot proxy (2.3:
`doveadm proxy kick`) drops the sessions it proxies to B and keeps the
sessions proxied to the other backend."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26700
USERS = ["u%d" % i for i in range(1, 9)]


def closed_within(c, seconds):
    """The server closes the session (a BYE first is fine)."""
    end = time.monotonic() + seconds
    c.sock.settimeout(1)
    while time.monotonic() < end:
        try:
            line = c.f.readline()
        except socket.timeout:
            continue
        except OSError:
            return True
        if not line:
            return True
    return False


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        sessions = {}
        try:
            for u in USERS:
                c = riglib.Imap(rig, "p1")
                sessions[u] = c
                st = c.login(u)
                eq(st[0], "OK", "%s: login through p1 (%s)" % (u, st[1]))
            where = {u: r.user(u)["backend"] for u in USERS}
            eq(set(where.values()), set(rig.backends),
               "sessions on both backends: %r" % where)
            victim = where[USERS[0]]
            ver = rig.info["version"]
            p = rig.doveadm("p1", *riglib.kick_argv(ver, victim))
            eq(p.returncode, 0, "doveadm %s: %s" %
               (" ".join(riglib.kick_argv(ver, victim)), p.stderr.strip()))
            for u in USERS:
                if where[u] == victim:
                    check(closed_within(sessions[u], 10),
                          "%s (on %s) was kicked" % (u, victim))
            for u in USERS:
                if where[u] != victim:
                    st = sessions[u].cmd("NOOP")
                    eq(st[0], "OK", "%s (on %s) still served after the "
                       "kick" % (u, where[u]))
            # a kicked user logs in again, to the same backend
            u = USERS[0]
            st, line = rig.imap_login("p1", u)
            eq(st, "OK", "%s: login after the kick (%s)" % (u, line))
            eq(riglib.logins_by_backend(rig).get(u), {victim: 2},
               "%s: both logins on %s" % (u, victim))
        finally:
            for c in sessions.values():
                c.close()


rt.run(main)
