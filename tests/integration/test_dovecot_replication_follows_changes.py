"""With replication on, the backends' own change events (the shipped
exporter snippet) make roostd sync each user to its replica: an LMTP
delivery through the proxy appears on the replica, and so do a flag change
and an expunge made over IMAP through the proxy.  The replica is the one
roostd stored for the user, never the user's own backend, and the user's
replication record shows the good syncs."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29100
USERS = ["u%d" % i for i in range(1, 7)]
LAG_MAX = 10	# seconds a change may take to reach the replica here


def deliver(rig, user):
    return riglib.lmtp_deliver(rig, user, subject="repl " + user)


def until(pred, what, seconds=LAG_MAX):
    t0 = time.monotonic()
    riglib.wait_for(pred, seconds, step=0.05)
    check(pred(), what)
    return time.monotonic() - t0


def main(t):
    r = t.roost(events_token=True, replication="yes")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        where = {}
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK",
               "%s logs in" % u)
            info = r.user(u)
            check(info["replica"] in rig.backends and
                  info["replica"] != info["backend"],
                  "%s has a stored replica other than its backend: %r"
                  % (u, info))
            where[u] = (info["backend"], info["replica"])
        eq({b for b, _ in where.values()}, set(rig.backends),
           "users on both backends: %r" % where)

        # Deliveries through the proxy reach the replica.
        mids = {}
        for u in USERS:
            mids[u] = deliver(rig, u)
        for u in USERS:
            b, rep = where[u]
            took = until(lambda: riglib.messages_with_id(
                rig, rep, u, mids[u]) == 1,
                "%s: the delivery reached replica %s" % (u, rep))
            eq(riglib.messages_with_id(rig, b, u, mids[u]), 1,
               "%s: still on its backend %s" % (u, b))
            print("%s: delivery on %s after %.2f s" % (u, rep, took))

        # A flag change and an expunge over IMAP through the proxy.
        u = USERS[0]
        b, rep = where[u]
        second = deliver(rig, u)
        until(lambda: riglib.messages_with_id(rig, rep, u, second) == 1,
              "%s: second delivery on the replica" % u)
        c = riglib.Imap(rig, "p1")
        try:
            eq(c.login(u)[0], "OK", "login")
            eq(c.cmd("SELECT INBOX")[0], "OK", "select")
            eq(c.cmd("STORE 1 +FLAGS (\\Flagged)")[0], "OK", "store")
            eq(c.cmd("STORE 2 +FLAGS (\\Deleted)")[0], "OK", "store deleted")
            eq(c.cmd("EXPUNGE")[0], "OK", "expunge")
            c.cmd("LOGOUT")
        finally:
            c.close()
        until(lambda: rig.message_ids(rep, u) == rig.message_ids(b, u),
              "%s: the expunge reached the replica: %r vs %r" %
              (u, rig.message_ids(rep, u), rig.message_ids(b, u)))
        eq(rig.message_ids(b, u), [mids[u]], "one message left on %s" % b)
        until(lambda: rig.flags(rep, u).get(mids[u]) ==
              rig.flags(b, u).get(mids[u]),
              "%s: the flag reached the replica: %r vs %r" %
              (u, rig.flags(rep, u), rig.flags(b, u)))
        check("\\Flagged" in rig.flags(rep, u)[mids[u]],
              "flagged on the replica")

        # What the operator sees.
        code, st = r.api("GET", "/v1/replication/users/" + u)
        eq(code, 200, "GET /v1/replication/users/%s" % u)
        eq(st["replica"], rep, "replication record names the replica")
        check(st["last_success"] is not None, "a good sync recorded: %r"
              % st)
        eq(st["replica_current"], True, "the replica is current")
        eq(st["last_error"], None, "no error")
        code, s = r.api("GET", "/v1/replication")
        eq(code, 200, "GET /v1/replication")
        check(s["totals"]["synced"] >= len(USERS),
              "syncs counted: %r" % s)
        eq(s["totals"]["events_not_from_backend"], 0,
           "no change came from anywhere but the users' backends")


rt.run(main)
