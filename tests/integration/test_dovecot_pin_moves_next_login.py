"""`roostctl user pin U B` moves the user's next IMAP login through a real
Dovecot proxy to B: mail appended afterwards is stored on B, not on the
backend the user had before."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26300
USERS = ["u1", "u2", "u3", "u4"]


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        for u in USERS:
            mid, msg = riglib.unique_message(subject="before", to=u)
            st, line = riglib.imap_append(rig, "p1", u, msg)
            eq(st, "OK", "%s: APPEND before the pin (%s)" % (u, line))
            old = r.user(u)["backend"]
            new = [b for b in rig.backends if b != old][0]
            eq(riglib.where_is_message(rig, u, mid)[old], 1,
               "%s: first message on %s" % (u, old))

            rc, out, err = r.ctl("user", "pin", u, new)
            eq(rc, 0, "roostctl user pin %s %s (%s)" % (u, new, err.strip()))
            js = r.user(u)
            check(js["backend"] == new and js["pinned"] is True,
                  "%s pinned to %s: %r" % (u, new, js))

            mid2, msg2 = riglib.unique_message(subject="after", to=u)
            st, line = riglib.imap_append(rig, "p1", u, msg2)
            eq(st, "OK", "%s: APPEND after the pin (%s)" % (u, line))
            eq(riglib.where_is_message(rig, u, mid2),
               {old: 0, new: 1},
               "%s: message after the pin (old %s, pinned %s)"
               % (u, old, new))
            # the old backend still has only the old message
            eq(riglib.where_is_message(rig, u, mid)[new], 0,
               "%s: first message not copied to %s" % (u, new))
            eq(riglib.logins_by_backend(rig).get(u),
               {old: 1, new: 1}, "%s: logins per backend" % u)


rt.run(main)
