"""A new user's placement on PostgreSQL does not hold roostd's loop while
it commits: with the commit made slow (a deferred trigger sleeps 0.4 s in
the new user's COMMIT, under the 0.5 s statement bound), lookups of known
users sent after it are all answered before it; a second new user, who
needs a batch of their own, waits for the first to land and is placed
after it; both answers name the backend the store holds."""

import threading
import time

import roosttest as rt
from roosttest import eq

SLOW_S = 0.4


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    r = t.roost(start=False, store="postgresql:" + pg.conninfo)
    r.start()
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    known = ["known%02d" % i for i in range(20)]
    where = {u: r.lookup_ok(u)["backend"] for u in known}
    pg.slow_commit(SLOW_S, "users", "INSERT", "NEW.\"user\" LIKE 'slow%'")

    out = {}
    first = threading.Thread(target=rt.lookup_timed, args=(r, "slow1", out))
    first.start()
    time.sleep(0.1)                 # its batch is in flight by now
    second = threading.Thread(target=rt.lookup_timed, args=(r, "slow2", out))
    second.start()
    answered = []
    for u in known:
        rt.lookup_timed(r, u, out)
        eq((out[u][0], out[u][1].get("backend")), (200, where[u]),
           "known user %s during the slow commit" % u)
        answered.append(out[u][2])
    first.join(30)
    second.join(30)
    eq(out["slow1"][0], 200, "the slow new user: %r" % (out["slow1"],))
    eq(out["slow2"][0], 200, "the second new user: %r" % (out["slow2"],))
    print("known users answered %.0f-%.0f ms before the slow commit's "
          "answer" % ((out["slow1"][2] - max(answered)) * 1000,
                      (out["slow1"][2] - min(answered)) * 1000))
    eq(sum(1 for a in answered if a < out["slow1"][2]), len(known),
       "known users answered before the slow commit landed")
    eq(out["slow2"][2] > out["slow1"][2], True,
       "the second new user's batch went after the first landed")
    rows = dict((row[0], row[1]) for row in pg.query(
        "SELECT \"user\", backend FROM users WHERE \"user\" LIKE 'slow%'"))
    eq(rows, {"slow1": out["slow1"][1]["backend"],
              "slow2": out["slow2"][1]["backend"]},
       "the answers name the stored backends")


rt.run(main)
