"""Changes made while roostd is not running, in IMAP sessions that stay
open across its kill -9 (an APPEND then a logout, a flag, an expunge),
raise events nobody takes; after the restart every one of them reaches
the user's replica anyway, without a new change.  Prints the time from
the restart to the last one on a replica."""
import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29000
USERS = ["u%d" % i for i in range(1, 9)]
LAG_MAX = 10		# s: a change may take this long to reach a replica
RESTART_MAX = 15	# s: from the restart to every change on a replica


def deliver(rig, user):
    return riglib.lmtp_deliver(rig, user, subject="repl " + user)


def main(t):
    r = t.roost(events_token=True, replication="yes")
    with contextlib.ExitStack() as stack:
        rig = riglib.enter_routed_rig(stack, t, r, BASE_PORT, ",".join(USERS))
        pair, mids = {}, {}
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK",
               "%s logs in" % u)
            info = r.user(u)
            pair[u] = (info["backend"], info["replica"])
            mids[u] = [deliver(rig, u), deliver(rig, u)]

        def same(u):
            b, rep = pair[u]
            return (riglib.asked(rig.message_ids, rep, u) ==
                    riglib.asked(rig.message_ids, b, u) and
                    riglib.asked(rig.flags, rep, u) == riglib.asked(rig.flags, b, u))
        riglib.wait_for(lambda: all(same(u) for u in USERS), LAG_MAX,
                        step=0.2)
        for u in USERS:
            check(same(u), "%s: replica in step before the kill" % u)
        a, f, x = USERS[:3]

        # Sessions through the proxy, open before the kill.
        sess = {}
        for u in (a, f, x):
            c = riglib.Imap(rig, "p1")
            eq(c.login(u)[0], "OK", "%s logs in" % u)
            eq(c.cmd("SELECT INBOX")[0], "OK", "%s: select" % u)
            sess[u] = c
        r.kill()
        # While roostd is down: an APPEND and a logout, a flag, an
        # expunge.  The backends' events find nobody.
        mid, msg = riglib.unique_message(subject="while down", to=a)
        eq(sess[a].append(msg)[0], "OK", "%s: APPEND while roostd is down"
           % a)
        sess[a].cmd("LOGOUT")
        sess[a].close()
        eq(sess[f].cmd("STORE 1 +FLAGS (\\Flagged)")[0], "OK",
           "%s: STORE while roostd is down" % f)
        eq(sess[x].cmd("STORE 2 +FLAGS (\\Deleted)")[0], "OK",
           "%s: STORE \\Deleted" % x)
        eq(sess[x].cmd("EXPUNGE")[0], "OK", "%s: EXPUNGE" % x)
        eq(riglib.asked(riglib.messages_with_id, rig, pair[a][0], a, mid), 1,
           "%s: the APPEND is on its backend" % a)
        check(not same(a) and not same(f) and not same(x),
              "the changes are not on the replicas yet")
        time.sleep(1)	# the exporter's tries are over

        log_at = len(r.log())
        t0 = time.monotonic()
        r.start()
        riglib.wait_for(lambda: all(same(u) for u in (a, f, x)),
                        RESTART_MAX, step=0.2)
        took = time.monotonic() - t0
        for u in USERS:
            check(same(u), "%s: every change on replica %s within %d s of "
                  "the restart: %r / %r against %r / %r" % (
                      u, pair[u][1], RESTART_MAX,
                      riglib.asked(rig.message_ids, pair[u][1], u),
                      riglib.asked(rig.flags, pair[u][1], u),
                      riglib.asked(rig.message_ids, pair[u][0], u),
                      riglib.asked(rig.flags, pair[u][0], u)))
        eq(riglib.asked(riglib.messages_with_id, rig, pair[a][1], a, mid), 1,
           "%s: the APPEND made while roostd was down is on %s" %
           (a, pair[a][1]))
        check("\\Flagged" in riglib.asked(rig.flags, pair[f][1], f)[mids[f][0]],
              "%s: the flag is on %s" % (f, pair[f][1]))
        eq(len(riglib.asked(rig.message_ids, pair[x][1], x)), 1,
           "%s: the expunge is on %s" % (x, pair[x][1]))
        print("every change made while roostd was down on its replica "
              "%.1f s after the restart" % took)
        check("incremental sync" in r.log()[log_at:],
              "the restart says it syncs every current replica")
        # The session still open goes on being replicated as usual.
        eq(sess[f].cmd("STORE 2 +FLAGS (\\Seen)")[0], "OK",
           "%s: STORE after the restart" % f)
        riglib.wait_for(lambda: same(f), LAG_MAX, step=0.1)
        check(same(f), "%s: a change after the restart replicated" % f)
        for u in (f, x):
            sess[u].cmd("LOGOUT")
            sess[u].close()
        riglib.wait_for(lambda: sum(rt.status(r.api(
            "GET", "/v1/replication"), 200, "status")["queued"].values())
            == 0, 10)
        s = rt.status(r.api("GET", "/v1/replication"), 200, "status")
        eq((s["queued"], s["running"], s["failed"], s["stuck"]),
           ({"sync": 0, "high": 0, "low": 0, "full": 0}, 0, 0, 0),
           "the queue drained, nothing failing: %r" % s)
        check(s["totals"]["synced"] >= len(USERS), "a sync for every user "
              "since the restart: %r" % s)


rt.run(main)
