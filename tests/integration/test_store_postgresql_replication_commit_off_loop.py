"""The replication queue's writes on PostgreSQL do not hold roostd's loop
while they commit: with the commit of one user's queue entry made slow (a
deferred trigger sleeps 0.4 s in its COMMIT, under the 0.5 s statement
bound), lookups of known users sent after a change event for that user
are all answered before that commit ends; the event itself is answered
once its entry is stored, and the user's sync runs."""

import threading
import time

import roosttest as rt
from roosttest import check, eq, status, wait_for
from fakedoveadm import add_fake_backends

KEY = "fake-doveadm-key-repl-commit-7304"
SLOW_S = 0.4


def main(t):
    rt.on_pg(t, scenario)


def queued(r):
    js = status(r.api("GET", "/v1/replication"), 200, "replication")
    return sum(js["queued"].values()) + js["running"]


def scenario(t, pg, fakes):
    r = t.roost(start=False, events_token=True, replication="yes",
                store="postgresql:" + pg.conninfo)
    r.start()
    add_fake_backends(r, fakes, KEY)
    known = ["known%02d" % i for i in range(20)]
    where = {u: r.lookup_ok(u)["backend"] for u in known + ["slow1"]}
    wait_for("the first syncs", lambda: queued(r) == 0)
    syncs = len(fakes[where["slow1"]].commands("sync", "slow1"))

    pg.slow_commit(SLOW_S, "repl", "INSERT OR UPDATE",
                   "NEW.\"user\" = 'slow1'")

    # The intake answers an event once its entry is stored: from a
    # connection of its own, while the lookups go on.
    out = {}

    def post():
        c = rt.Roost.__new__(rt.Roost)
        c.__dict__.update(r.__dict__)
        c._conn = None
        c.transcript = []
        out["event"] = c.post_event(where["slow1"], "mail_delivery_finished",
                                    {"user": "slow1", "rcpt_to": "slow1",
                                     "message_id": "<slow@x>"})[0]
        out["event_at"] = time.time()
        c._close_conn()
    poster = threading.Thread(target=post)
    poster.start()
    time.sleep(0.1)                 # its flush is committing by now
    answered = []
    for u in known:
        eq(r.lookup_ok(u)["backend"], where[u],
           "known user %s during the slow commit" % u)
        answered.append(time.time())
    poster.join(30)
    eq(out.get("event"), 204, "the event, once its entry is stored")

    done = wait_for("the slow commit's end", pg.slow_commit_ends)[0]
    print("known users answered %.0f-%.0f ms before the queue's slow "
          "commit ended" % ((done - max(answered)) * 1000,
                            (done - min(answered)) * 1000))
    eq(sum(1 for a in answered if a < done), len(known),
       "known users answered before the queue's slow commit ended")
    check(out["event_at"] >= done, "the event was answered once stored")

    wait_for("the user's sync", lambda: len(
        fakes[where["slow1"]].commands("sync", "slow1")) > syncs)
    wait_for("the queue empty again", lambda: queued(r) == 0)
    # Each write of slow1's entry is slow: the last one lands last.
    wait_for("slow1's sync stored, nothing left queued", lambda: pg.query(
        "SELECT 1 FROM repl WHERE \"user\" = 'slow1' AND priority IS NULL"
        " AND last_ok > 0"))


rt.run(main)
