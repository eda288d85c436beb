"""An incremental sync reads the user's dsync state from PostgreSQL
without holding roostd's loop.  roostd on PostgreSQL with replication on,
fake doveadm backends: a user's first syncs store a state.  Then roostd's
store session is stopped (SIGSTOP on its server process: connected and
silent, as a hung server would be) for 3 s and a change event comes for
that user: its sync waits for its state (GET /v1/replication shows it
under `reading_states`) while roostd answers every known user's lookup.
After the thaw roostd reconnects by itself and the sync reaches the
backend with the state the store held."""

import os
import signal
import threading
import time

import roosttest as rt
from roosttest import check, eq, status, wait_for
from fakedoveadm import add_fake_backends

KEY = "fake-doveadm-key-repl-state-8815"
FREEZE_S = 3.0
USER = "stater"


def main(t):
    rt.on_pg(t, scenario)


def repl(r):
    return status(r.api("GET", "/v1/replication"), 200, "replication")


def queued(r):
    js = repl(r)
    return sum(js["queued"].values()) + js["running"]


def scenario(t, pg, fakes):
    r = t.roost(start=False, events_token=True, replication="yes",
                store="postgresql:" + pg.conninfo)
    r.start()
    add_fake_backends(r, fakes, KEY)
    known = ["known%02d" % i for i in range(20)]
    where = {u: r.lookup_ok(u)["backend"] for u in known + [USER]}
    wait_for("the first syncs", lambda: queued(r) == 0)
    # The full sync made the replica current; one more change gives an
    # incremental sync, whose state is then stored.
    eq(r.post_event(where[USER], "mail_delivery_finished",
                    {"user": USER, "rcpt_to": USER})[0], 204, "event")
    wait_for("the user's state stored", lambda: pg.query(
        "SELECT state FROM repl WHERE \"user\" = '%s' AND state <> ''"
        " AND priority IS NULL" % USER))
    wait_for("the queue empty", lambda: queued(r) == 0)
    stored = pg.query("SELECT state FROM repl WHERE \"user\" = '%s'" %
                      USER)[0][0]
    before = len(fakes[where[USER]].commands("sync", USER))
    time.sleep(1.5)			# start-up store work is done
    pids = rt.store_session_pids(pg)
    eq(len(pids), 1, "one store session: %r" % pids)

    stop = threading.Event()
    out, seen = {}, []
    looker = threading.Thread(target=rt.lookups_until,
                              args=(r, known, where, stop.is_set, out))
    answered = {}

    def post():
        # Its answer waits for the queue entry to be stored.
        c = rt.Roost.__new__(rt.Roost)
        c.__dict__.update(r.__dict__)
        c._conn = None
        c.transcript = []
        answered["event"] = c.post_event(
            where[USER], "mail_delivery_finished",
            {"user": USER, "rcpt_to": USER})[0]
        c._close_conn()
    poster = threading.Thread(target=post)
    os.kill(pids[0], signal.SIGSTOP)
    try:
        looker.start()
        poster.start()
        end = time.monotonic() + FREEZE_S
        while time.monotonic() < end:
            seen.append(repl(r).get("reading_states", -1))
            time.sleep(0.05)
    finally:
        os.kill(pids[0], signal.SIGCONT)
        stop.set()
        looker.join(30)
    print("store session stopped %.1f s: %d status answers, %d showing the "
          "sync waiting for its state; %d lookups, slowest %.1f ms" %
          (FREEZE_S, len(seen), sum(1 for x in seen if x > 0), out["n"],
           out["slowest"] * 1000))
    check(max(seen) >= 1, "roostd answered while the sync's state read "
          "waited (reading_states seen: %r)" % seen[-10:])
    eq(out["wrong"], [], "known users answered while the session hung")
    check(out["n"] > 0, "lookups made while the session hung")
    poster.join(60)

    wait_for("the user's sync after the thaw", lambda: len(
        fakes[where[USER]].commands("sync", USER)) > before, 30)
    params = fakes[where[USER]].commands("sync", USER)[before]
    eq(params.get("state"), stored, "the sync starts from the stored state")
    check(not params.get("fullSync"), "an incremental sync")
    wait_for("the queue empty again", lambda: queued(r) == 0, 30)


rt.run(main)
