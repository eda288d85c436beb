"""Lookup times go to PostgreSQL without holding roostd's loop.  Users
whose stored lookup time is old are looked up over and over, so that each
maintenance pass has lookup times to write; a deferred trigger makes every
commit that updates a user row sleep 0.4 s.  Lookups keep being answered
inside those commits (between the start and the end of a trigger's sleep,
as PostgreSQL's clock says): a loop waiting for the write could answer
none there.  After the trigger goes, the lookup times are in the store."""

import threading
import time

import roosttest as rt
from roosttest import check, eq

SLOW_S = 0.4
USERS = 40
RUN_S = 4.0
EDGE_S = 0.05		# an answer this close to a window's edge is not counted


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    r = t.roost(store="postgresql:" + pg.conninfo)
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    users = ["old%02d" % i for i in range(USERS)]
    where = {u: "b1" if i % 2 else "b2" for i, u in enumerate(users)}
    # Assigned long ago and last looked up then: every lookup now is a
    # lookup time to store.
    pg.query("INSERT INTO users (\"user\", backend, since, last_lookup,"
             " confirmed) VALUES " + ", ".join(
                 "('%s', '%s', 1000, 1000, 1)" % (u, where[u])
                 for u in users))
    r.restart()
    pg.slow_commit(SLOW_S, "users", "UPDATE", "true")

    stop = threading.Event()
    answers, wrong = [], []
    th = threading.Thread(target=rt.lookups_timed,
                          args=(r, users, where, stop, answers, wrong))
    th.start()
    time.sleep(RUN_S)
    stop.set()
    th.join(30)
    eq(wrong, [], "lookups answered with the stored backend")
    ends = pg.slow_commit_ends()
    check(ends, "lookup times were written (slow commits seen)")
    inside = sum(1 for a in answers for e in ends
                 if e - SLOW_S + EDGE_S < a < e - EDGE_S)
    print("%d lookups, %d slow commits, %d answers inside a commit" %
          (len(answers), len(ends), inside))
    check(inside > 0, "lookups answered while a lookup-time commit ran")

    pg.query("DROP TRIGGER slow_commit ON users")
    rt.wait_for("the lookup times stored", lambda: int(pg.query(
        "SELECT count(*) FROM users WHERE \"user\" LIKE 'old%%' AND"
        " last_lookup > 1000")[0][0]) == USERS, seconds=60)


rt.run(main)
