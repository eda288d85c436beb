"""roostd killed with -9 while its replication queue is full loses no
user: with replication paused, a delivery to each of 30 users leaves 30
queued users (GET /v1/replication) and nothing on their replicas; after
kill -9 and a restart (which resumes) the queue is read back and every
message reaches its user's replica.  Then the same again with the kill
right after a resume, while syncs are under way.  Prints the times from
the restart to the last message on a replica."""
import contextlib
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 28900
USERS = ["u%d" % i for i in range(1, 31)]
LAG_MAX = 10		# s: a change may take this long to reach a replica
RESTART_MAX = 20	# s: from the restart to every queued user synced


def deliver(rig, user):
    return riglib.lmtp_deliver(rig, user, subject="repl " + user)


def status(r):
    return rt.status(r.api("GET", "/v1/replication"), 200,
                     "GET /v1/replication")


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
            mids[u] = [deliver(rig, u)]

        def on_replicas(users):
            return all(riglib.asked(riglib.messages_with_id, rig, pair[u][1], u,
                             m) == 1
                       for u in users for m in mids[u])
        riglib.wait_for(lambda: on_replicas(USERS), LAG_MAX, step=0.2)
        check(on_replicas(USERS), "first deliveries on the replicas")
        riglib.wait_for(lambda: sum(status(r)["queued"].values()) == 0 and
                        status(r)["running"] == 0, 5)

        def fill_queue():
            """Pause, deliver to every user, and see them queued."""
            s = rt.status(r.api("POST", "/v1/replication/pause"), 200,
                          "pause")
            eq(s["paused"], True, "paused")
            for u in USERS:
                mids[u].append(deliver(rig, u))
            riglib.wait_for(lambda: status(r)["queued"]["high"] ==
                            len(USERS), 10)
            s = status(r)
            print("queue before the kill: %r" % {k: s[k] for k in (
                "paused", "queued", "running", "failed", "stuck",
                "waiting", "backoff", "oldest_pending_s")})
            eq(s["queued"], {"sync": 0, "high": len(USERS), "low": 0,
                             "full": 0}, "every user queued once")
            eq((s["running"], s["failed"], s["waiting"]), (0, 0, 0),
               "nothing runs while paused")
            for u in USERS:
                eq(riglib.asked(riglib.messages_with_id, rig, pair[u][1], u,
                                           mids[u][-1]), 0,
                   "%s: nothing synced while paused" % u)
                eq(rt.status(r.api("GET", "/v1/replication/users/" + u),
                             200, "replication of %s" % u)["state"],
                   "queued", "%s queued" % u)

        def after_restart(what, least):
            log_at = len(r.log())
            t0 = time.monotonic()
            r.start()
            riglib.wait_for(lambda: on_replicas(USERS), RESTART_MAX,
                            step=0.2)
            took = time.monotonic() - t0
            for u in USERS:
                eq(riglib.asked(rig.message_ids, pair[u][1], u),
                   riglib.asked(rig.message_ids, pair[u][0], u),
                   "%s: %s: the same mail on %s and %s" %
                   (what, u, pair[u][0], pair[u][1]))
            log = r.log()[log_at:]
            # Read back at the start, or, on a shared store whose killed
            # session still held the role a moment, at the first claim
            # round after it (role repl taken a second later).
            m = re.search(r"replication: (?:(\d+) users with work in the "
                          r"queue|dispatching here now \((\d+) users with "
                          r"work\))", log)
            check(m is not None, "%s: the restart reads the queue back"
                  % what)
            n = m.group(1) or m.group(2)
            print("%s: %s users read back; every message on its replica "
                  "%.1f s after the restart" % (what, n, took))
            check(least <= int(n) <= len(USERS),
                  "%s: %s users read back, want %d..%d" %
                  (what, n, least, len(USERS)))
            riglib.wait_for(lambda: sum(status(r)["queued"].values()) ==
                            0 and status(r)["running"] == 0, 5)
            s = status(r)
            eq((s["paused"], s["queued"], s["running"], s["failed"],
                s["stuck"]), (False, {"sync": 0, "high": 0, "low": 0,
                                      "full": 0}, 0, 0, 0),
               "%s: the queue empty and nothing failing: %r" % (what, s))
            check(s["totals"]["synced"] >= least, "%s: syncs counted "
                  "since the restart: %r" % (what, s))

        # A full queue, paused: kill -9, restart (which resumes).
        fill_queue()
        r.kill()
        after_restart("kill while paused", len(USERS))

        # Again, killed right after the resume, while syncs run.
        fill_queue()
        s = rt.status(r.api("POST", "/v1/replication/resume"), 200,
                      "resume")
        r.kill()
        print("at the kill: running %d, queued %r" % (s["running"],
                                                      s["queued"]))
        check(s["running"] > 0, "syncs under way at the kill: %r" % s)
        after_restart("kill during syncs", len(USERS) - s["running"])


rt.run(main)
