"""IMAP through a real Dovecot proxy: each user's APPENDed message is stored
on the backend roostd assigned, and never on the other one."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26000
USERS = ["u%d" % i for i in range(1, 13)]


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        placed = {}
        for u in USERS:
            mid, msg = riglib.unique_message(to=u)
            st, line = riglib.imap_append(rig, "p1", u, msg)
            eq(st, "OK", "%s: APPEND through p1 (%s)" % (u, line))
            b = r.user(u)["backend"]
            check(b in rig.backends, "%s assigned to a rig backend: %r"
                  % (u, b))
            placed[u] = b
            want = {x: (1 if x == b else 0) for x in rig.backends}
            eq(riglib.where_is_message(rig, u, mid), want,
               "%s: message %s per backend (assigned %s)" % (u, mid, b))
        eq(set(placed.values()), set(rig.backends),
           "the users are spread over both backends: %r" % placed)
        # The backends' own logs agree: each user logged in on its own
        # backend only.
        seen = riglib.logins_by_backend(rig)
        for u, b in placed.items():
            eq(sorted(seen.get(u, {})), [b], "%s logged in on" % u)


rt.run(main)
