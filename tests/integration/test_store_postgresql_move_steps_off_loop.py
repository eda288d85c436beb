"""A move's steps go to PostgreSQL without holding roostd's loop.  roostd
on PostgreSQL with fake doveadm APIs on two backends and a proxy; a
deferred trigger makes every commit that records a move's step (kicking,
waiting) sleep 0.4 s.  A flush of one backend moves its users while
another thread looks known users up: lookups are answered inside those
commits (between the start and the end of a trigger's sleep, as
PostgreSQL's clock says: a loop waiting for the step could answer none
there), every user ends on the other backend, and the store shows every
move done.  Before that, a move stored by another writer for a user
with a session on the old backend: its kick comes only after the commit
of its step "waiting" ended, since that step marks the user moving for
every other instance, which then holds the user's logins."""

import threading
import time

import roosttest as rt
from roosttest import check, eq
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-steps-5120"
SLOW_S = 0.4
EDGE_S = 0.05		# an answer this close to a window's edge is not counted
N = 12


def fakes():
    return {n: FakeDoveadm(a, KEY) for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
             ("p1", "127.0.0.1"))}


def main(t):
    rt.on_pg(t, scenario, fakes)


def scenario(t, pg, fakes):
    r = t.roost(store="postgresql:" + pg.conninfo, move_max_parallel="4")
    for i, n in enumerate(("b1", "b2")):
        r.add_backend(n, "127.0.0.%d" % (11 + i),
                      doveadm={"url": fakes[n].url, "api_key": KEY})
    eq(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": fakes["p1"].url, "api_key": KEY}})[0], 201, "proxy")
    for i in range(N):
        eq(r.api("PUT", "/v1/users/" + rt.q("mover%02d" % i),
                 {"backend": "b1"})[0], 200, "pin to b1")
    known = ["known%02d" % i for i in range(10)]
    for u in known:
        eq(r.api("PUT", "/v1/users/" + rt.q(u), {"backend": "b2"})[0], 200,
           "pin to b2")
    where = {u: "b2" for u in known}
    pg.slow_commit(SLOW_S, "moves", "UPDATE",
                   "NEW.state IN ('kicking', 'waiting')")
    mark_order(pg, r, fakes)

    stop = threading.Event()
    answers, wrong = [], []
    th = threading.Thread(target=rt.lookups_timed,
                          args=(r, known, where, stop, answers, wrong))
    th.start()
    try:
        st, js = r.api("POST", "/v1/backends/b1/flush", {})
        check(st in (200, 202), "flush of b1: %r %r" % (st, js))
        rt.wait_for("b1 empty", lambda: not [
            u for u in r.all_users("b1") if u["user"].startswith("mover")],
            seconds=60)
    finally:
        stop.set()
        th.join(30)
    eq(wrong, [], "known users answered with their backend")
    ends = rt.wait_for("steps recorded", pg.slow_commit_ends)
    inside = sum(1 for a in answers for e in ends
                 if e - SLOW_S + EDGE_S < a < e - EDGE_S)
    print("%d lookups, %d slow step commits, %d answers inside one" %
          (len(answers), len(ends), inside))
    check(inside > 0, "lookups answered while a move's step was committed")
    for i in range(N):
        eq(r.lookup_ok("mover%02d" % i)["backend"], "b2",
           "mover%02d after the flush" % i)
    rt.wait_for("every move done in the store", lambda: pg.query(
        "SELECT count(*) FROM moves WHERE state <> 'done'")[0][0] == "0",
        seconds=30)



def mark_order(pg, r, fakes):
    """A move stored by another writer (psql) for a user with a session
    on b1: its kick comes only after the commit of its step "waiting"
    has ended.  (In a flush or after an API call, a store write of the
    job or the call waits on the loop for that commit, and so orders the
    kick after it whatever the move does.)"""
    eq(r.api("PUT", "/v1/users/solo", {"backend": "b1"})[0], 200, "pin solo")
    fakes["b1"].sessions["solo"] = 1
    # When solo's "waiting" reached the store: its commit's end.
    pg.query("CREATE TABLE marked (\"user\" text, tx int8, at float8)")
    pg.query("CREATE FUNCTION note_marked() RETURNS trigger LANGUAGE"
             " plpgsql AS $$ BEGIN INSERT INTO marked VALUES"
             " (NEW.\"user\", txid_current(), extract(epoch FROM"
             " clock_timestamp())); RETURN NULL; END $$")
    # Named to run after slow_commit's sleep (triggers go in name order).
    pg.query("CREATE CONSTRAINT TRIGGER tz_marked AFTER UPDATE ON moves"
             " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN"
             " (NEW.state = 'waiting') EXECUTE FUNCTION note_marked()")
    pg.query("INSERT INTO moves (\"user\", from_backend, to_backend, reason,"
             " state, created, updated) VALUES ('solo', 'b1', 'b2', 'move',"
             " 'queued', 1, 1)")
    rt.wait_for("solo moved", lambda: r.lookup("solo")[1].get("backend") ==
                "b2", seconds=30)
    # A transaction's rows are seen once all its triggers have run.
    at = float(pg.query("SELECT max(x.at) FROM marked m JOIN marked x ON"
                        " x.tx = m.tx WHERE m.\"user\" = 'solo'")[0][0])
    kicks = fakes["b1"].command_times("kick", "solo")
    check(kicks, "solo was kicked")
    print("solo kicked %.3f s after its mark was stored" % (min(kicks) - at))
    check(min(kicks) >= at, "solo kicked %.3f s before its mark was "
          "stored" % (at - min(kicks)))


rt.run(main)
