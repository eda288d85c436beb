"""A backend's health verdict on PostgreSQL does not hold roostd's loop
while it commits: with the commit of b1's verdict made slow (a deferred
trigger sleeps 0.4 s in it, under the 0.5 s statement bound), lookups of
known users of b2 go on being answered while b1's verdict commits, and
the verdict is stored all the same, up to "failed"."""

import time

import roosttest as rt
from roosttest import check, wait_for
from fakemail import FakeService

SLOW_S = 0.4
BOUND = 20	# seconds: a failure bound, not a speed claim


def services():
    return {n: FakeService(a, "imap") for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"))}


def main(t):
    rt.on_pg(t, scenario, services)


def scenario(t, pg, services):
    r = t.roost(store="postgresql:" + pg.conninfo, probe_interval="1s",
                probe_timeout="1s", probe_rise="2", probe_fall="2")
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        r.add_backend(n, a, ports={"imap": services[n].port, "pop3": 0,
                                   "lmtp": 0, "submission": 0, "sieve": 0})
    wait_for("b1 ok", lambda: r.backend("b1")["health"]["state"] == "ok",
             BOUND)
    # Users of b2 only: one of b1's is placed anew when b1 fails, and its
    # answer rightly waits for that commit.
    known = [u for u in ("known%02d" % i for i in range(40))
             if r.lookup_ok(u)["backend"] == "b2"]
    check(len(known) > 5, "b2 has users (%d)" % len(known))

    pg.slow_commit(SLOW_S, "backend_health", "INSERT OR UPDATE",
                   "NEW.backend = 'b1'")

    services["b1"].set_mode("bye")
    answered = []
    t0 = time.monotonic()
    done = None
    while done is None and time.monotonic() - t0 < BOUND:
        r.lookup_ok(known[len(answered) % len(known)])
        answered.append(time.time())
        time.sleep(0.02)
        if len(answered) % 10 == 0:
            done = (pg.slow_commit_ends() or [None])[0]
    check(done is not None, "b1's failing verdict committed")
    # Answers that came while that commit slept, away from its edges: a
    # loop held by the commit answers nothing then, only after.
    during = [a for a in answered if done - SLOW_S + 0.05 < a < done - 0.02]
    print("%d lookups answered during the 0.4 s commit of b1's verdict"
          % len(during))
    check(len(during) >= 3, "lookups answered while b1's verdict "
          "committed: %d" % len(during))

    wait_for("b1's failed verdict stored", lambda: pg.query(
        "SELECT 1 FROM backend_health WHERE backend = 'b1' AND"
        " state = 'failed'"), BOUND)
    wait_for("b1 failed", lambda: r.backend("b1")["health"]["state"] ==
             "failed", BOUND)


rt.run(main)
