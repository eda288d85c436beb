"""With replication, a move takes the user's mail along: to a backend that
is not its replica the mail is copied first while the user keeps working,
then after the kick a final sync carries the last changes, and only then
is the new backend handed out; the replica stays and keeps syncing from
the new backend.  A move onto the replica swaps the two.  Three backends;
every message on the new backend, the login through the proxy sees them."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29500
USERS = ["u%d" % i for i in range(1, 7)]


def deliver(rig, users, n, tag):
    out = {u: [] for u in users}
    for i in range(n):
        for u in users:
            out[u].append(riglib.lmtp_deliver(rig, u, subject="%s %d"
                                              % (tag, i)))
    return out


def exists(rig, u):
    c = riglib.Imap(rig, "p1")
    try:
        eq(c.login(u)[0], "OK", "%s logs in" % u)
        st, _, untagged = c.cmd("SELECT INBOX")
        eq(st, "OK", "SELECT")
        c.cmd("LOGOUT")
        return [x for x in untagged if x.endswith(" EXISTS")]
    finally:
        c.close()


def move(r, u, to):
    code, js = r.api("POST", "/v1/moves", {"user": u, "backend": to})
    eq(code, 202, "move %s to %s: %r" % (u, to, js))
    riglib.wait_for(lambda: r.user(u)["backend"] == to, 30, 0.1)
    eq(r.user(u)["backend"], to, "%s moved to %s" % (u, to))


def main(t):
    r = t.roost(events_token=True, replication="yes")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS),
                           backends=3) as rig:
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK", "login %s" % u)
        want = deliver(rig, USERS, 5, "before")
        riglib.wait_for(lambda: all(
            sorted(rig.message_ids(r.user(u)["replica"], u)) ==
            sorted(want[u]) for u in USERS), 30, 0.2)

        # To a third backend: copied, then switched; the replica stays.
        u = USERS[0]
        b, rep = r.user(u)["backend"], r.user(u)["replica"]
        third = (set(rig.backends) - {b, rep}).pop()
        move(r, u, third)
        info = r.user(u)
        eq(info["replica"], rep, "%s keeps its replica %s" % (u, rep))
        eq(sorted(rig.message_ids(third, u)), sorted(want[u]),
           "%s: every message on %s" % (u, third))
        eq(exists(rig, u), ["* %d EXISTS" % len(want[u])],
           "%s sees all its mail on %s" % (u, third))
        check("copying" not in r.log() or "failed" not in r.log(),
              "no failed copy")
        more = deliver(rig, [u], 2, "after")
        want[u] += more[u]
        riglib.wait_for(lambda: sorted(rig.message_ids(rep, u)) ==
                        sorted(want[u]), 20, 0.2)
        eq(sorted(rig.message_ids(rep, u)), sorted(want[u]),
           "%s: the replica %s syncs from %s now" % (u, rep, third))

        # Onto the replica: the two swap.
        v = USERS[1]
        b, rep = r.user(v)["backend"], r.user(v)["replica"]
        move(r, v, rep)
        info = r.user(v)
        eq((info["backend"], info["replica"]), (rep, b),
           "%s: backend and replica swapped" % v)
        for x in (rep, b):
            eq(sorted(rig.message_ids(x, v)), sorted(want[v]),
               "%s: every message on %s, once" % (v, x))


rt.run(main)
