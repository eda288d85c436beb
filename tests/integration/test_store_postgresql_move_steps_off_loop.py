"""A move's steps go to PostgreSQL without holding roostd's loop.  roostd
on PostgreSQL with fake doveadm APIs on two backends and a proxy; a
deferred trigger makes every commit that records a move's step (kicking,
waiting) sleep 0.4 s.  A flush of one backend moves its users while
another thread looks known users up: lookups are answered inside those
commits (between the start and the end of a trigger's sleep, as
PostgreSQL's clock says: a loop waiting for the step could answer none
there), every user ends on the other backend, and the store shows every
move done."""

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


rt.run(main)
