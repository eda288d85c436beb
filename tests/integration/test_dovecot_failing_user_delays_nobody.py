"""One user whose sync fails every time (its home on the replica made
unreadable) delays nobody, even with replication_max_conns = 1: the other
users' mail reaches their replica at the lag measured before the failure
began, while the failing user backs off on its own (10 s, doubling), is
shown with its failures and error, and is not retried more often than
its backoff allows although its mail keeps coming.  Prints the lags, the
exit the failure gives, and the failing user's attempts."""
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

BASE_PORT = 28800
FAILING = "u1"
OTHERS = ["u%d" % i for i in range(2, 9)]
LAG_MAX = 10		# s: a change may take this long to reach a replica
WINDOW = 25		# s: how long the failing user is watched


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


def main(t):
    r = t.roost(events_token=True, replication="yes",
                            replication_max_conns="1", log_level="debug")
    users = [FAILING] + OTHERS
    with contextlib.ExitStack() as stack:
        rig = riglib.enter_routed_rig(stack, t, r, BASE_PORT, ",".join(users))
        pair = {}
        for u in users:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK",
               "%s logs in" % u)
            info = r.user(u)
            pair[u] = (info["backend"], info["replica"])
        # Every replica current (first full syncs) and has some mail.
        for u in users:
            took = lag(rig, u, pair[u][1])
            check(took is not None, "%s: first delivery on %s" %
                  (u, pair[u][1]))

        def rec(u):
            return rt.status(r.api("GET", "/v1/replication/users/" + u),
                             200, "replication of %s" % u)
        for u in users:
            eq(rec(u)["replica_current"], True, "%s: replica current" % u)

        # The usual lag, one sync at a time.
        before = []
        for _ in range(2):
            for u in OTHERS:
                took = lag(rig, u, pair[u][1])
                check(took is not None, "%s: delivery on %s" %
                      (u, pair[u][1]))
                before.append(took)

        # The failing user's home on its replica becomes unreadable to
        # Dovecot: every sync of it fails there.
        rep = pair[FAILING][1]
        home = riglib.home_of(rig, rep, FAILING)
        check(os.path.isdir(home), "%s's home on %s: %s" % (FAILING, rep,
                                                            home))
        mode = os.stat(home).st_mode & 0o7777
        os.chmod(home, 0)
        log_at = len(r.log())
        rep_log_at = os.path.getsize(rig.inst(rep)["log"])
        t0 = time.monotonic()
        failing_mids = [deliver(rig, FAILING)]
        riglib.wait_for(lambda: rec(FAILING)["failures"] >= 1, 10)
        st = rec(FAILING)
        print("%s after its first failure: %r" % (FAILING, st))
        check(st["failures"] >= 1, "%s's sync fails: %r" % (FAILING, st))
        check(st["last_error"] and "exit" in st["last_error"],
              "%s: the error gives the exit: %r" % (FAILING, st))
        m = re.search(r"exit (\d+)", st["last_error"])
        code = int(m.group(1))
        check(code not in (0, 67, 68), "a failure that keeps the user "
              "queued: exit %d" % code)

        # Its mail keeps coming; the others' lag stays.
        during = []
        rounds = 0
        while time.monotonic() - t0 < WINDOW:
            failing_mids.append(deliver(rig, FAILING))
            rounds += 1
            for u in OTHERS:
                took = lag(rig, u, pair[u][1])
                check(took is not None, "%s: delivery on %s while %s "
                      "fails" % (u, pair[u][1], FAILING))
                during.append(took)
        watched = time.monotonic() - t0
        mb, md = statistics.median(before), statistics.median(during)
        print("lag of the others (max_conns 1): before median %.3f s max "
              "%.3f s (%d), while %s fails median %.3f s max %.3f s (%d)"
              % (mb, max(before), len(before), FAILING, md, max(during),
                 len(during)))
        check(md <= mb * 3 + 1.0, "the others' lag stays: median %.3f s "
              "against %.3f s before" % (md, mb))

        # The failing user: shown as failing, retried by its backoff only.
        st = rec(FAILING)
        print("%s after %.0f s and %d more deliveries: %r" %
              (FAILING, watched, rounds, st))
        check(st["failures"] >= 2, "%s failed again after its backoff: "
              "%r" % (FAILING, st))
        check(st["state"] in ("backoff", "stuck", "running"),
              "%s backs off: %r" % (FAILING, st))
        eq(st["replica"], rep, "%s: its replica" % FAILING)
        check(rep in st["last_error"], "the error names %s: %r" %
              (rep, st))
        attempts = [ln for ln in r.log()[log_at:].splitlines()
                    if re.search(r"replication: %s: (full|incremental) "
                                 r"sync " % FAILING, ln)]
        # 10 s, then 20 s: attempts at 0, 10 and 30 s; exit 2 would add
        # its reruns to each.
        most = 3 * (4 if code == 2 else 1)
        print("%s: %d sync attempts in %.0f s (at most %d allowed), exit "
              "%d:\n  %s" % (FAILING, len(attempts), watched, most, code,
                             "\n  ".join(attempts)))
        check(2 <= len(attempts) <= most, "%s tried %d times in %.0f s"
              % (FAILING, len(attempts), watched))
        # The replica saw as many: one dsync server process each.
        with open(rig.inst(rep)["log"], errors="replace") as f:
            f.seek(rep_log_at)
            seen = set(re.findall(r"doveadm\(%s\)<(\d+)>.*Permission "
                                  r"denied" % FAILING, f.read()))
        eq(len(seen), len(attempts), "syncs of %s that reached %s (dsync "
           "processes in its log)" % (FAILING, rep))
        code_, s = r.api("GET", "/v1/replication")
        print("status: %r" % {k: s[k] for k in (
            "queued", "running", "failed", "stuck", "waiting", "backoff")})
        eq(s["failed"] + s["stuck"], 1, "one user failing: %r" % s)
        eq(s["waiting"], 0, "nobody waits for a backend: %r" % s)
        for u in OTHERS:
            st = rec(u)
            eq((st["last_error"], st["failures"]), (None, 0),
               "%s syncs cleanly" % u)

        # Made readable again, it catches up with all its mail at its
        # next try (the record says when).
        os.chmod(home, mode)
        t1 = time.monotonic()
        st = rec(FAILING)
        check("next_try" in st, "%s: the next try is shown: %r" %
              (FAILING, st))
        wait = max(0.0, st["next_try"] - time.time()) + 10
        check(wait <= 50, "%s: next try within its 40 s backoff: %r" %
              (FAILING, st))
        riglib.wait_for(lambda: all(riglib.asked(riglib.messages_with_id, 
            rig, rep, FAILING, m) == 1 for m in failing_mids), wait,
            step=0.5)
        for m in failing_mids:
            eq(riglib.asked(riglib.messages_with_id, rig, rep, FAILING, m), 1,
               "%s: %s on %s by its next try" % (FAILING, m, rep))
        eq(riglib.asked(rig.message_ids, rep, FAILING), riglib.asked(rig.message_ids, 
            pair[FAILING][0], FAILING), "%s: the same mail on both" %
            FAILING)
        st = rec(FAILING)
        print("%s caught up %.1f s after the repair: %r" %
              (FAILING, time.monotonic() - t1, st))
        eq((st["failures"], st["last_error"]), (0, None),
           "%s syncs cleanly again" % FAILING)

rt.run(main)
