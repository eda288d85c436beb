"""roost.lua reaches roostd over its unix socket (listen_unix) from a real
Dovecot proxy on the same host: logins land on the backend roostd
assigned, the proxy log says so, a stopped roostd gives a temporary
failure (never a guess), and after a restart logins work again on the
kept socket path.  Skipped when ROOST_LUA_TRANSPORT=dovecot (Dovecot's
HTTP client has no unix sockets; roost.lua refuses the URL then)."""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29600
USERS = ["u%d" % i for i in range(1, 9)]


def main(t):
    if os.environ.get("ROOST_LUA_TRANSPORT") == "dovecot":
        raise rt.Skip("unix: URLs need the socket transport")
    r = t.roost()
    rigdir = os.path.join(t.base, "rig")
    if riglib.dovecot_version() == "2.4":
        # inside the 2.4 root, where the chrooted proxy sees it
        inner = "/r/roostd.sock"
        sock = os.path.join(rigdir, "root") + inner
    else:
        os.chmod(t.base, 0o711)
        sock = inner = os.path.join(t.base, "roostd.sock")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS),
                           roost_urls=["unix:" + inner]) as rig:
        # the 2.4 root exists now: roostd listens on its socket too
        r.write_config(listen_unix=sock)
        eq(r.kill(signal.SIGTERM), 0, "roostd's exit before the restart")
        r.start()
        check(os.path.exists(sock), "roostd made %s" % sock)
        placed = {}
        for u in USERS:
            st, line = riglib.imap_login_from(rig, "p1", u)
            eq(st, "OK", "%s: login over the unix socket (%s)" % (u, line))
            placed[u] = r.user(u)["backend"]
        eq(set(placed.values()), set(rig.backends),
           "the users are spread over both backends: %r" % placed)
        seen = riglib.logins_by_backend(rig)
        for u, b in placed.items():
            eq(seen.get(u), {b: 1}, "%s logged in once, on %s" % (u, b))
        with open(rig.inst("p1")["log"], errors="replace") as f:
            plog = f.read()
        check("roost: lookup transport socket" in plog and
              "unix socket" in plog, "the proxy log names the unix socket")

        # roostd gone: the socket file goes with it, logins fail for now
        eq(r.kill(signal.SIGTERM), 0, "roostd's exit on SIGTERM")
        check(not os.path.exists(sock), "roostd removed %s" % sock)
        st, line = riglib.imap_login_from(rig, "p1", USERS[0],
                                          source=riglib.fresh_source())
        check(st == "NO" and "[UNAVAILABLE]" in line,
              "roostd stopped: temporary failure (%s %s)" % (st, line))
        # back on the same store and socket: the same backend as before
        r.start()
        st, line = riglib.imap_login_from(rig, "p1", USERS[1],
                                          source=riglib.fresh_source())
        eq(st, "OK", "after the restart (%s)" % line)
        seen = riglib.logins_by_backend(rig)
        eq(seen.get(USERS[1]), {placed[USERS[1]]: 2},
           "%s's logins per backend" % USERS[1])


rt.run(main)
