"""Three roostd share one PostgreSQL store with replication on (pgtmp, fake
doveadm APIs, no Dovecot).  Only the holder of the role "repl" syncs:
users placed through any instance get their first full sync once, and a
change event posted to an instance that does not hold the role is stored
as a request and leads to exactly one sync, run by the holder.  kill -9 of
the holder while a user's sync hangs in the fake: a survivor takes the
role within seconds (the time is printed) and syncs that user again, once;
the fake never sees two syncs of one user under way at once from live
instances, and nobody else is synced again."""

import time

import roosttest as rt
from roosttest import check, eq, status
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-share-repl-4410"
N = 24
BOUND = 30	# seconds: a failure bound, not a speed claim


def syncs(fakes, user):
    return sum(len(f.commands("sync", user)) for f in fakes.values())


def requests_left(pg):
    return int(pg.query("SELECT count(*) FROM repl_requests")[0][0])


def fakes():
    return {n: FakeDoveadm(a, KEY) for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"))}


def main(t):
    rt.on_pg(t, scenario, fakes)


def scenario(t, pg, fakes):
    store = "postgresql:" + pg.conninfo
    rs = [t.roost(store=store, events_token=True, replication="yes",
                  log_level="debug")
          for _ in range(3)]
    for i, n in enumerate(("b1", "b2")):
        rs[0].add_backend(n, "127.0.0.%d" % (11 + i),
                          ports={"imap": 143, "doveadm": 24245},
                          doveadm={"url": fakes[n].url, "api_key": KEY})
    first = rt.wait_for("role repl held", lambda: rt.role_holder(rs, "repl"))
    others = [r for r in rs if r is not first]
    for r in rs:
        eq(status(r.api("GET", "/v1/replication"), 200, "replication")
           ["dispatching"], r is first, "only the holder dispatches")

    for r in rs:
        rt.wait_for("the backends known to %s" % r.tmp,
                    lambda r=r: len(r.backends()) == 2)
    # Placed through every instance: one first (full) sync each.
    names = ["u%02d@example.org" % i for i in range(N)]
    for i, u in enumerate(names):
        rs[i % 3].lookup_ok(u)
    rt.wait_for("every first sync done", lambda: all(
        syncs(fakes, u) >= 1 for u in names) and rt.repl_settled(first) and
        requests_left(pg) == 0, BOUND)
    eq({u: syncs(fakes, u) for u in names}, {u: 1 for u in names},
       "one first sync per user")
    where = {u["user"]: u["backend"] for u in rs[1].all_users()}

    # A delivery posted to an instance without the role: one sync each.
    for i, u in enumerate(names):
        r = others[i % 2]
        eq(r.post_event(where[u], "mail_delivery_finished",
                        {"user": u, "rcpt_to": u})[0], 204,
           "event for %s to a non-holder" % u)
    rt.wait_for("every change synced", lambda: all(
        syncs(fakes, u) >= 2 for u in names) and rt.repl_settled(first) and
        requests_left(pg) == 0, BOUND)
    time.sleep(1.5)
    eq({u: syncs(fakes, u) for u in names}, {u: 2 for u in names},
       "exactly one sync per change, by the holder")
    stored = sum(status(r.api("GET", "/v1/replication"), 200, "repl")
                 ["totals"]["requests_stored"] for r in others)
    check(stored >= N, "the non-holders stored the events as requests "
          "(%d)" % stored)

    # kill -9 of the holder while a sync of x hangs.
    x = names[0]
    for f in fakes.values():
        f.sync_delay[x] = 60
    eq(others[0].post_event(where[x], "mail_delivery_finished",
                            {"user": x, "rcpt_to": x})[0], 204, "event for x")
    rt.wait_for("x's sync hangs", lambda: any(
        f.syncing.get(x) for f in fakes.values()), BOUND)
    t_kill = time.monotonic()
    first.kill()
    for f in fakes.values():
        f.sync_delay.pop(x)
    heir = rt.wait_for("a survivor takes role repl",
                       lambda: rt.role_holder(others, "repl"), BOUND)
    took = time.monotonic() - t_kill
    print("role repl taken over %.2f s after kill -9 of its holder" % took)
    check(took < 10, "taken over within 10 s (%.2f s)" % took)
    rt.wait_for("x synced again", lambda: syncs(fakes, x) >= 4 and
                rt.repl_settled(heir), BOUND)
    time.sleep(2)
    # Sent: first, the change, the hung one, the redo.
    eq(syncs(fakes, x), 4, "x's hung sync redone once")
    eq({u: syncs(fakes, u) for u in names[1:]}, {u: 2 for u in names[1:]},
       "nobody else synced again")
    eq([u for f in fakes.values() for u in f.overlaps], [],
       "never two syncs of one user at once")
    eq(requests_left(pg), 0, "no request left behind")

    # The heir syncs what the last one asks of it.
    plain = [r for r in others if r is not heir][0]
    y = names[1]
    eq(plain.post_event(where[y], "mail_delivery_finished",
                        {"user": y, "rcpt_to": y})[0], 204, "event for y")
    rt.wait_for("y synced by the heir", lambda: syncs(fakes, y) == 3, BOUND)
rt.run(main)
