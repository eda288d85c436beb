"""An instance that fell behind the kept change history reloads everything
from PostgreSQL without holding its loop.  One roostd on PostgreSQL; its
store session is stopped (SIGSTOP on the server process: connected and
silent, as a hung server would be) for 3 s, and meanwhile a user is added,
another deleted, and the history pruned past what roostd read: its next
pass reloads.  Known users are answered with their backend all along, also
while the session is stopped (a reload on that session held the loop
until the store's bound of 2 s: no answer in the 1.5 s after the prune,
and the session dropped with every role); memory is the store after the
reload: the new user there, the deleted one forgotten, and the feed goes
on from the head."""

import time

import roosttest as rt
from roosttest import check, eq, status

FREEZE_S = 3.0
WINDOW_S = 1.5          # after the prune; under the store's 2 s bound
EDGE_S = 0.1


def feed(r):
    return status(r.api("GET", "/v1/status"), 200, "status")["feed"]


def user_on(r, name, backend):
    st, js = r.api("GET", "/v1/users/" + rt.q(name))
    return st == 200 and js.get("assigned") and js.get("backend") == backend


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    r, known, where = rt.pg_roost_known(t, pg)
    eq(r.lookup_ok("carol")["backend"] in ("b1", "b2"), True, "carol placed")
    rt.wait_for("the feed connected", lambda: feed(r)["connected"])
    time.sleep(1.5)                     # start-up store work is done
    pids = rt.store_session_pids(pg)
    check(pids, "roostd's store session")

    with rt.looking_up(r, known, where) as (answers, wrong):
        with rt.stopped(pids, hold=FREEZE_S):
            # Changes roostd has not read, then the history pruned past
            # them (as when an instance was away longer than changes are
            # kept).
            pg.query("INSERT INTO users (\"user\", backend, since) VALUES"
                     " ('dave', 'b2', extract(epoch FROM now())::int8);"
                     " DELETE FROM users WHERE \"user\" = 'carol';"
                     " INSERT INTO meta (key, value) SELECT"
                     " 'changes_pruned', max(seq)::text FROM changes"
                     " ON CONFLICT (key) DO UPDATE SET value ="
                     " excluded.value; DELETE FROM changes")
            pruned = time.time()
        thawed = time.time()
        rt.wait_for("reloaded", lambda: feed(r)["reloads"] >= 1)
        time.sleep(0.2)
    eq(wrong, [], "known users answered with their backend")
    end = min(thawed, pruned + WINDOW_S) - EDGE_S
    inside = sum(1 for a in answers if pruned + EDGE_S < a < end)
    print("known users: %d lookups, %d in the %.1f s after the prune while "
          "the store session was stopped" % (len(answers), inside,
                                             end - pruned - EDGE_S))
    check(inside > 0, "known users answered while the store session was "
          "stopped (%d lookups in all)" % len(answers))
    check("reloading everything" in r.log(), "the reload is logged")
    check(user_on(r, "dave", "b2"), "dave there after the reload")
    check(not r.user("carol")["assigned"], "carol forgotten by the reload")
    for u in known:
        eq(r.lookup_ok(u)["backend"], where[u], "%s after the reload" % u)
    # And the feed goes on from the store's head.
    pg.query("UPDATE users SET backend = 'b1' WHERE \"user\" = 'dave'")
    rt.wait_for("dave on b1", lambda: user_on(r, "dave", "b1"))


rt.run(main)
