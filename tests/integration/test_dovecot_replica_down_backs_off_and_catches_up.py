"""A backend that is the replica of some users dies: the probes mark it
failed, mail to those users (whose own backend is up) keeps being
delivered but their replication waits, with an error naming the replica,
while users whose replica is up keep syncing at their usual lag.  When the
backend comes back, every waiting user's mail reaches it within a bound.
Prints the lags before and during the outage and the catch-up time."""
import contextlib
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 28700
USERS = ["u%d" % i for i in range(1, 25)]
LAG_MAX = 10		# s: a change may take this long to reach a replica
CATCH_UP_MAX = 15	# s: from the restart to every waiting user synced


def deliver(rig, user):
    return riglib.lmtp_deliver(rig, user, subject="repl " + user)


def lag(rig, user, replica):
    """Deliver to user and return the seconds until the message is on
    its replica (None: not within LAG_MAX)."""
    mid = deliver(rig, user)
    t0 = time.monotonic()
    if riglib.wait_for(lambda: riglib.asked(riglib.messages_with_id, 
            rig, replica, user, mid) == 1, LAG_MAX, step=0.02):
        return time.monotonic() - t0
    return None


def why_late(r, rig, user, pair):
    """What roostd and the user's two backends say, for a delivery that did
    not reach the replica: its record, roostd's counters, roostd's log
    lines naming the user and both backends' errors (a CI excerpt shows
    only the first lines of a failure, so they go into its message)."""
    code, rec = r.api("GET", "/v1/replication/users/" + user)
    code2, s = r.api("GET", "/v1/replication")
    counts = {k: s.get(k) for k in ("events", "synced", "failed",
                                    "running")} if code2 == 200 else s
    mine = [ln for ln in r.log().splitlines()
            if re.search(r"\b%s\b" % re.escape(user), ln)][-6:]
    errs = ["%s: %s" % (b, ln) for b in pair for ln in rig.log_lines(b)
            if re.search(r"Error|Panic|Fatal|export", ln)][-6:]
    return "record %r; counters %r; roostd on %s: %s; backends: %s" % (
        rec if code == 200 else code, counts, user, " | ".join(mine),
        " | ".join(errs) or "no errors")


def health(r, name):
    return r.backend(name)["health"]["state"]


def main(t):
    r = t.roost(events_token=True, replication="yes",
                            probe_interval="1s", probe_timeout="1s",
                            probe_fall="2", probe_rise="2",
                            log_level="debug")
    with contextlib.ExitStack() as stack:
        rig = riglib.enter_routed_rig(stack, t, r, BASE_PORT, ",".join(USERS), backends=3)
        pair = {}
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK",
               "%s logs in" % u)
            info = r.user(u)
            pair[u] = (info["backend"], info["replica"])
            check(pair[u][1] in rig.backends and pair[u][1] != pair[u][0],
                  "%s: a stored replica other than its backend: %r"
                  % (u, info))
        # The backend to stop: the one that leaves most users on both
        # sides (its replica users, and users that never touch it).
        def split(x):
            down = [u for u in USERS if pair[u][1] == x and
                    pair[u][0] != x]
            up = [u for u in USERS if x not in pair[u]]
            return down, up
        x = max(rig.backends, key=lambda b: min(map(len, split(b))))
        down, up = split(x)
        print("stopping %s: %d users with it as replica %s, %d users "
              "away from it %s" % (x, len(down), down, len(up), up))
        check(len(down) >= 3 and len(up) >= 3, "users on both sides: %r"
              % pair)

        # Every user's replica made current (their first full sync),
        # then the usual lag of the users that will keep syncing.
        riglib.wait_for(lambda: all(r.user(u).get("replica_current")
                                    for u in USERS), LAG_MAX)
        for u in USERS:
            eq(rt.status(r.api("GET", "/v1/replication/users/" + u), 200,
                         "replication of %s" % u)["replica_current"],
               True, "%s: first sync to %s done" % (u, pair[u][1]))
        before = []
        for u in up:
            took = lag(rig, u, pair[u][1])
            if took is None:
                check(False, "%s: delivery on replica %s before the "
                      "outage: %s" % (u, pair[u][1],
                                      why_late(r, rig, u, pair[u])))
            before.append(took)
        riglib.wait_for(lambda: all(health(r, b) == "ok"
                                    for b in rig.backends), 10)
        for b in rig.backends:
            eq(health(r, b), "ok", "%s passes its probes" % b)

        # The replica dies.  Mail keeps coming before the probes notice:
        # those users' syncs fail and back off.
        t0 = time.monotonic()
        rig.restart(x, kill=True, start=False)
        pending = {}
        t_first = time.monotonic()
        early = down[:len(down) // 2]
        for u in early:
            pending[u] = [deliver(rig, u)]
        riglib.wait_for(lambda: health(r, x) == "failed", 10, step=0.2)
        eq(health(r, x), "failed", "%s marked failed" % x)
        print("%s marked failed after %.1f s" % (x, time.monotonic() - t0))
        log_at = len(r.log())

        # Mail to users whose replica is down: delivered on their backend,
        # replication waits and says why.
        for u in down:
            if u not in early:
                pending[u] = [deliver(rig, u)]
        for u in down:
            eq(riglib.asked(riglib.messages_with_id, rig, pair[u][0], u,
                     pending[u][0]),
               1, "%s: delivered on its backend %s" % (u, pair[u][0]))
        # Users whose replica is up keep their lag meanwhile.
        during = []
        for u in up:
            took = lag(rig, u, pair[u][1])
            if took is None:
                check(False, "%s: delivery on replica %s during the "
                      "outage of %s: %s" % (u, pair[u][1], x,
                                            why_late(r, rig, u, pair[u])))
            during.append(took)
        # A second round for the waiting users: still no tight loop.
        for u in down:
            pending[u].append(deliver(rig, u))
        time.sleep(2)
        mb, md = statistics.median(before), statistics.median(during)
        print("lag of users syncing elsewhere: before median %.3f s max "
              "%.3f s, during median %.3f s max %.3f s" %
              (mb, max(before), md, max(during)))
        check(md <= mb * 3 + 1.0, "their lag stays: median %.3f s during "
              "the outage against %.3f s before" % (md, mb))

        def rec(u):
            return rt.status(r.api("GET", "/v1/replication/users/" + u),
                             200, "replication of %s" % u)
        riglib.wait_for(lambda: all(rec(u)["state"] in ("waiting",
                                                         "backoff")
                                    for u in down), 5)
        for u in down:
            st = rec(u)
            print("%s: %s, %r" % (u, st["state"], st["last_error"]))
            check(st["state"] in ("waiting", "backoff"),
                  "%s: replication waits for %s: %r" % (u, x, st))
            eq(st["replica"], x, "%s: its replica" % u)
            check(st["last_error"] is not None and x in st["last_error"],
                  "%s: the error names the replica %s: %r" % (u, x, st))
        for u in up:
            st = rec(u)
            eq(st["last_error"], None, "%s: no error" % u)
        # Once it is marked failed, nobody's sync goes to it.
        tried = [ln for ln in r.log()[log_at:].splitlines()
                 if "sync " in ln and ln.endswith(" -> " + x)]
        eq(tried, [], "no sync toward %s while it is failed" % x)
        code, s = r.api("GET", "/v1/replication")
        eq(code, 200, "GET /v1/replication")
        print("status during the outage: %r" % {k: s[k] for k in (
            "queued", "running", "failed", "stuck", "waiting", "backoff")})
        check(s["waiting"] + s["backoff"] >= len(down),
              "the waiting users counted: %r" % s)
        check(sum(s["queued"].values()) >= len(down),
              "their work stays queued: %r" % s)
        eq(s["stuck"], 0, "nobody stuck")
        eq(s["running"], 0, "no sync hangs on the dead replica")
        age = time.monotonic() - t_first
        check(int(age) - 1 <= s["oldest_pending_s"] <= age + 1,
              "the oldest pending age is the first waiting delivery's "
              "(%.1f s): %r" % (age, s))

        # The replica comes back: every waiting user catches up.
        t1 = time.monotonic()
        rig.restart(x)

        def caught_up():
            return all(sorted(riglib.asked(riglib.messages_with_id, rig, x, u, m)
                              for m in pending[u]) == [1, 1]
                       for u in down)
        riglib.wait_for(caught_up, CATCH_UP_MAX, step=0.2)
        took = time.monotonic() - t1
        for u in down:
            for m in pending[u]:
                eq(riglib.asked(riglib.messages_with_id, rig, x, u, m), 1,
                   "%s: %s reached %s within %d s of its restart" %
                   (u, m, x, CATCH_UP_MAX))
        print("every waiting user on %s %.1f s after its restart "
              "(health %s)" % (x, took, health(r, x)))
        for u in down:
            eq(riglib.asked(rig.message_ids, x, u),
               riglib.asked(rig.message_ids, pair[u][0], u),
               "%s: the same mail on %s and %s" % (u, pair[u][0], x))
        riglib.wait_for(lambda: all(rec(u)["last_error"] is None
                                    for u in down), 5)
        for u in down:
            st = rec(u)
            eq((st["state"], st["last_error"]), ("idle", None),
               "%s: replication idle and clean: %r" % (u, st))
        code, s = r.api("GET", "/v1/replication")
        eq((s["failed"], s["stuck"], s["waiting"]), (0, 0, 0),
           "nothing failing after the recovery: %r" % s)


rt.run(main)
