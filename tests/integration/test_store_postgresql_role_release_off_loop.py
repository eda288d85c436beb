"""Giving back a role does not hold roostd's loop.  One roostd on
PostgreSQL holds every role, health:b3 among them; its store session is
stopped (SIGSTOP on the server process: connected and silent, as a hung
server would be) for 3 s, and meanwhile an admin removes b3 (through the
admin lane's session, which is not stopped).  The next role round gives
health:b3 back.  Known users are answered with their backend all along,
also in the second after that round (a release on the stopped session
held the loop until the store's bound of 2 s: no answer then).  After
the thaw roostd holds every role but health:b3, and the server holds no
lock for it."""

import time

import roosttest as rt
from roosttest import check, eq, status

FREEZE_S = 3.0
EDGE_S = 0.1


def main(t):
    rt.on_pg(t, scenario)


def role_locks(pg):
    """Role locks (exclusive advisory locks) held by roostd's store
    session."""
    return int(pg.query(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON"
        " a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND"
        " l.mode = 'ExclusiveLock' AND a.application_name = 'roostd'")
        [0][0])


def scenario(t, pg, made):
    r, known, where = rt.pg_roost_known(t, pg)
    r.add_backend("b3", "127.0.0.13")       # no user on it
    every = {"moves", "repl", "health:b1", "health:b2"}
    rt.wait_for("roostd holds every role",
                lambda: every | {"health:b3"} <= rt.roles(r))
    time.sleep(1.5)                     # start-up store work is done
    pids = rt.store_session_pids(pg)
    check(pids, "roostd's store session")

    with rt.looking_up(r, known, where) as (answers, wrong):
        with rt.stopped(pids, hold=FREEZE_S):
            status(r.api("DELETE", "/v1/backends/b3"), 200, "remove b3")
            removed = time.time()
    eq(wrong, [], "known users answered with their backend")
    # The round that gives health:b3 back comes within a second of the
    # removal; the second after it is what a waiting loop missed.
    lo, hi = removed + 1.0 + EDGE_S, removed + 2.0 - EDGE_S
    inside = sum(1 for a in answers if lo < a < hi)
    print("known users: %d lookups, %d in the second after the release "
          "round" % (len(answers), inside))
    check(inside > 0, "known users answered after the release round "
          "(%d lookups in all)" % len(answers))
    rt.wait_for("every role but health:b3", lambda: rt.roles(r) == every,
                seconds=20)
    rt.wait_for("four role locks", lambda: role_locks(pg) == 4)
    for u in known:
        eq(r.lookup_ok(u)["backend"], where[u], "%s after the thaw" % u)


rt.run(main)
