"""The replication queue as the backends' change events fill it (posted by
hand, no Dovecot): a delivery on the user's backend queues it at high
priority over the low one its new replica got; the same event from its
replica (dsync's echo) changes nothing; from any other backend it is
counted and logged once per user; a failed command queues nothing.  A
burst of 300 events costs far fewer store transactions than events, and
kill -9 loses no queued user.  Replicas are stored: adding a backend
re-points none, and users whose replica goes get another."""
import threading
import time

import roosttest as rt
from roosttest import check, eq, status

USERS = ["u%d" % i for i in range(1, 31)]


def record(r, u):
    return status(r.api("GET", "/v1/replication/users/" + u), 200,
                  "replication record of %s" % u)


def main(t):
    r = t.roost(events_token=True, replication="yes", log_level="debug")
    for b in ("b1", "b2", "b3"):
        r.add_backend(b)	# no doveadm API: syncs wait, entries stay
    status(r.api("POST", "/v1/replication/pause"), 200, "pause")
    for u in USERS:
        r.lookup_ok(u)
    where = {u: r.user(u) for u in USERS}
    for u in USERS:
        check(where[u]["replica"] not in (None, where[u]["backend"]),
              "%s: a stored replica: %r" % (u, where[u]))
        eq(where[u]["replica_current"], False, "%s: not current yet" % u)
        js = record(r, u)
        eq((js["state"], js["priority"]), ("queued", "low"),
           "%s: its first (full) sync is queued" % u)

    u = USERS[0]
    b, rep = where[u]["backend"], where[u]["replica"]
    other = ({"b1", "b2", "b3"} - {b, rep}).pop()
    delivery = {"user": u, "rcpt_to": u, "message_id": "<m@x>"}
    eq(r.post_event(b, "mail_delivery_finished", delivery)[0], 204,
       "delivery event")
    eq(record(r, u)["priority"], "high", "a delivery raises it to high")
    code, s0 = r.api("GET", "/v1/replication")
    eq(r.post_event(rep, "mail_expunged",
                    {"user": u, "reason_code": ["imap:cmd_expunge"]})[0],
       204, "event from the replica")
    eq(r.post_event(other, "mail_delivery_finished", delivery)[0], 204,
       "event from a third backend")
    eq(r.post_event(other, "mail_delivery_finished", delivery)[0], 204,
       "again")
    eq(r.post_event(b, "imap_command_finished",
                    {"user": USERS[1], "cmd_name": "STORE",
                     "tagged_reply_state": "NO"})[0], 204, "failed STORE")
    eq(record(r, USERS[1])["priority"], "low", "a failed command queues "
       "nothing more")
    code, s1 = r.api("GET", "/v1/replication")
    eq(s1["totals"]["events_from_replica"] -
       s0["totals"]["events_from_replica"], 1, "the replica's echo counted")
    eq(s1["totals"]["events_not_from_backend"] -
       s0["totals"]["events_not_from_backend"], 2, "the bypass counted")
    eq(r.log().count("a change of %s on %s, which is not its backend"
                     % (u, other)), 1, "the bypass is logged once")
    eq(s1["queued"]["high"], 1, "one user at high: %r" % s1["queued"])

    # A burst: 300 events at once from 10 clients.
    before = r.log().count("queue entries and")
    codes = []

    def post(part):
        c = rt.Roost.__new__(rt.Roost)
        c.__dict__.update(r.__dict__)
        c._conn = None
        c.transcript = []
        for i in part:
            v = USERS[i % len(USERS)]
            codes.append(c.post_event(where[v]["backend"],
                                      "imap_command_finished",
                                      {"user": v, "cmd_name": "APPEND",
                                       "tagged_reply_state": "OK"})[0])
        c._close_conn()
    threads = [threading.Thread(target=post, args=(range(k, 300, 10),))
               for k in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    eq(codes, [204] * 300, "every event of the burst answered 204")
    tx = r.log().count("queue entries and") - before
    # One transaction a loop pass, whatever a pass holds: fewer than the
    # events (on an idle machine about 60; under load passes hold less).
    check(0 < tx < 300, "300 events in %d store transactions" % tx)
    print("300 events, %d store transactions" % tx)
    code, s2 = r.api("GET", "/v1/replication")
    eq(s2["queued"]["high"], len(USERS), "every user at high")

    # kill -9: the queue is where it was.
    r.kill()
    r.start()
    code, s3 = r.api("GET", "/v1/replication")
    eq(s3["queued"], s2["queued"], "the queue after kill -9")
    eq(record(r, u)["priority"], "high", "%s still at high" % u)
    check("replication: %d users with work in the queue" % len(USERS)
          in r.log(), "the restart says what it took up")

    # Replicas stay put when a backend comes; go with one that goes.
    r.add_backend("b4")
    for v in USERS:
        eq(r.user(v)["replica"], where[v]["replica"],
           "%s: adding b4 re-points no replica" % v)
    gone = [v for v in USERS if where[v]["replica"] == other]
    check(gone, "some users have %s as replica" % other)
    status(r.api("DELETE", "/v1/backends/%s?force=1" % other), 200,
           "remove %s" % other)
    # The replica walk runs on the loop's timer: a few ticks.
    for _ in range(100):
        if all(r.user(v)["replica"] is not None for v in gone):
            break
        time.sleep(0.05)
    for v in gone:
        js = r.user(v)
        check(js["replica"] not in (None, other, js["backend"]),
              "%s: a new replica after %s went: %r" % (v, other, js))
        eq(js["replica_current"], False, "%s: the new one is not current"
           % v)


rt.run(main)
