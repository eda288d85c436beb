"""The moves a flush makes go to PostgreSQL without holding roostd's
loop.  roostd on PostgreSQL with fake doveadm APIs on two backends and a
proxy; a deferred trigger makes every commit that stores new moves sleep
0.4 s for each.  A flush of one backend makes its moves a few at a time
(at most move_max_parallel under way) while another thread looks known
users up: lookups are answered inside those commits (a loop waiting for
the commit could answer none there), every user ends on the other
backend, and the store shows every move done and the job over with its
count (roosttest.flush_under_slow_commits)."""

import roosttest as rt
from roosttest import check

KEY = "fake-doveadm-key-pulls-5120"
SLOW_S = 0.4


def main(t):
    rt.on_pg(t, scenario, lambda: rt.flush_fakes(KEY))


def scenario(t, pg, fakes):
    r = t.roost(store="postgresql:" + pg.conninfo, move_max_parallel="4")
    n, slow, inside = rt.flush_under_slow_commits(
        r, pg, fakes, KEY, SLOW_S, "INSERT", "true")
    print("%d lookups, %d slow new moves (a sleep each in its commit), %d "
          "answers inside one" % (n, slow, inside))
    check(inside > 0, "lookups answered while new moves were committed")


rt.run(main)
