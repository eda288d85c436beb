"""A sync that dies mid-way for a passing reason (exit 75, as when Dovecot
panics on a lock deadlock between dsync and another process of the same
user, seen on both sides) runs again at once: the delivery reaches the
replica long before the 10 s backoff would end.  Only once: when the
rerun fails too, the user backs off as documented.

A relay in front of the replica's doveadm port resets the dsync connections
it is told to cut, after the replica's first answer."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from relay import Relay  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26900
USERS = ["u1", "u2"]
BACKOFF_S = 10		# the first backoff (docs/api.md)
SOON_S = 5		# a rerun at once lands well within it


def rec(r, u):
    return rt.status(r.api("GET", "/v1/replication/users/" + u), 200,
                     "replication of %s" % u)


def main(t):
    r = t.roost(events_token=True, replication="yes", log_level="debug")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        eq(riglib.imap_login_from(rig, "p1", "u1")[0], "OK", "u1 logs in")
        info = r.user("u1")
        b, rep = info["backend"], info["replica"]
        check(rep in rig.backends and rep != b, "a replica: %r" % info)
        riglib.wait_for(lambda: rec(r, "u1")["replica_current"], 10)
        eq(rec(r, "u1")["replica_current"], True, "first full sync done")

        # The replica's doveadm port, as roostd hands it to dsync, is now
        # the relay's.
        host = r.backend(rep)
        real = host["ports"]["doveadm"]
        relay = Relay(host["host"], (host["host"], real))
        rt.status(r.api("PATCH", "/v1/backends/" + rep,
                        {"ports": {"doveadm": relay.port}}), 200,
                  "doveadm port of %s to the relay" % rep)

        # One sync cut: the rerun at once carries the delivery.
        relay.cut(1, b"dsync")
        log_at = len(r.log())
        mid = riglib.lmtp_deliver(rig, "u1", subject="cut once")
        t0 = time.monotonic()
        riglib.wait_for(lambda: riglib.asked(riglib.messages_with_id, rig,
                                             rep, "u1", mid) == 1,
                        BACKOFF_S + 5, step=0.1)
        took = time.monotonic() - t0
        eq(relay.cuts, 1, "the relay cut one dsync connection")
        log = r.log()[log_at:]
        check("u1: sync from %s to %s: temporary failure (exit 75)"
              % (b, rep) in log, "the cut sync failed with exit 75:\n%s"
              % log)
        eq(riglib.asked(riglib.messages_with_id, rig, rep, "u1", mid), 1,
           "the delivery reached replica %s" % rep)
        print("delivery on %s %.2f s after the cut (backoff: %d s)"
              % (rep, took, BACKOFF_S))
        check(took < SOON_S, "the cut sync ran again at once: the message "
              "took %.2f s, a backoff takes %d s" % (took, BACKOFF_S))
        st = rec(r, "u1")
        eq((st["state"], st["last_error"], st["failures"]),
           ("idle", None, 0), "u1 clean after the rerun: %r" % st)

        # Two cuts in a row: the rerun fails too and the user backs off.
        relay.cut(2, b"dsync")
        mid2 = riglib.lmtp_deliver(rig, "u1", subject="cut twice")
        riglib.wait_for(lambda: relay.cuts == 3, 5, step=0.05)
        eq(relay.cuts, 3, "both syncs cut")
        riglib.wait_for(lambda: rec(r, "u1")["state"] == "backoff", 5)
        st = rec(r, "u1")
        eq((st["state"], st["failures"]), ("backoff", 1),
           "after two failures in a row, one backoff: %r" % st)
        check(st["next_try"] - time.time() > BACKOFF_S - 3,
              "the next try after the first backoff: %r" % st)
        eq(riglib.asked(riglib.messages_with_id, rig, rep, "u1", mid2), 0,
           "not on the replica before the backoff ends")
        # The backoff ends: the next sync goes through.
        riglib.wait_for(lambda: riglib.asked(riglib.messages_with_id, rig,
                                             rep, "u1", mid2) == 1,
                        BACKOFF_S + 10, step=0.5)
        eq(riglib.asked(riglib.messages_with_id, rig, rep, "u1", mid2), 1,
           "on the replica after the backoff")
        eq(relay.cuts, 3, "no cut since")
        relay.close()


if __name__ == "__main__":
    rt.run(main)
