"""With roostd stopped, an IMAP login through a real Dovecot proxy gets a
temporary failure (NO [UNAVAILABLE]) and reaches no backend; once roostd
runs again on the same store, logins work and go where they went before."""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26400
USERS = ["u%d" % i for i in range(1, 9)]


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        known, fresh = USERS[:4], USERS[4:]
        before = {}
        for u in known:
            st, line = rig.imap_login("p1", u)
            eq(st, "OK", "%s: login with roostd running (%s)" % (u, line))
            before[u] = r.user(u)["backend"]
        eq(set(before.values()), set(rig.backends),
           "users spread over both backends: %r" % before)
        seen_before = riglib.logins_by_backend(rig)

        eq(r.kill(signal.SIGTERM), 0, "roostd exit status on SIGTERM")
        # A few attempts only: after a run of temporary failures Dovecot
        # itself slows every login down (beyond 10 s after about seven).
        by_backend = {}
        for u in known:
            by_backend.setdefault(before[u], u)
        tries = list(by_backend.values()) + fresh[:1]
        for u in tries:
            # each from an address of its own: Dovecot delays logins from
            # an address that just failed one
            st, line = riglib.imap_login_from(rig, "p1", u,
                                              source=riglib.fresh_source())
            check(st == "NO" and "[UNAVAILABLE]" in line,
                  "%s: login with roostd stopped: %r" % (u, line))
        # a wrong password is no different: nothing is asked of a backend
        st, line = riglib.imap_login_from(rig, "p1", fresh[1], "wrong",
                                          source=riglib.fresh_source())
        check(st == "NO" and "[UNAVAILABLE]" in line,
              "wrong password with roostd stopped: %r" % line)
        eq(riglib.logins_by_backend(rig), seen_before,
           "no backend saw a login while roostd was stopped")
        r.start()
        for u in fresh:
            eq(r.user(u)["assigned"], False,
               "%s: still unassigned after roostd came back" % u)
        for u in known:
            st, line = riglib.imap_login_from(rig, "p1", u,
                                              source=riglib.fresh_source(),
                                              timeout=40)
            eq(st, "OK", "%s: login after roostd came back (%s)" % (u, line))
            eq(r.user(u)["backend"], before[u], "%s: assignment kept" % u)
        seen = riglib.logins_by_backend(rig)
        for u in known:
            eq(seen.get(u), {before[u]: 2},
               "%s: logins per backend (both on %s)" % (u, before[u]))
        for u in fresh:
            st, line = riglib.imap_login_from(rig, "p1", u,
                                              source=riglib.fresh_source())
            eq(st, "OK", "%s: first login after restart (%s)" % (u, line))
            b = r.user(u)["backend"]
            eq(riglib.logins_by_backend(rig).get(u), {b: 1},
               "%s: logged in once, on %s" % (u, b))


rt.run(main)
