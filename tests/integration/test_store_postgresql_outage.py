"""PostgreSQL down for 10 s under a running roostd (the server crashed,
then came back on the same port): every user roostd already knew is still
answered, from memory, with the backend it had; a new user gets a
temporary failure (503 naming the store), never a backend; admin changes
are refused the same way and change nothing; a delivery reported during
the outage is synced once the database is back; the log says so in a few
lines, not once per retry.  When the database is back, all of it
resumes without a restart: new users are placed, the pin is taken, and
everything acknowledged is in the database, as a restarted roostd shows."""

import json
import time

import roosttest as rt
from roosttest import check, eq, q, status, wait_for
from fakedoveadm import add_fake_backends

KEY = "fake-doveadm-key-outage-7731"
OUTAGE_S = 10


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, fakes):
    # the fakes are added to on_pg's dict, which closes them
    r = t.roost(start=False, events_token=True,
                store="postgresql:" + pg.conninfo, replication="yes")
    r.start()
    add_fake_backends(r, fakes, KEY)
    known = ["known%02d" % i for i in range(40)]
    where = {}
    for u in known:
        st, js = r.lookup(u)
        eq(st, 200, "lookup %s before" % u)
        where[u] = js["backend"]
    # Queued and running: a sync that ends during the outage logs.
    wait_for("the first syncs", lambda: rt.repl_settled(r))
    waiting = known[3]
    synced_before = len(fakes[where[waiting]].commands("sync", waiting))

    log_before = len(r.log().splitlines())
    pg.halt()
    t0 = time.monotonic()
    # A delivery on the user's backend while the database is away: its
    # sync waits for the database, and is not lost.
    st, body = r.post_event(where[waiting], "mail_delivery_finished",
                            {"user": waiting})
    eq((st, json.loads(body).get("reason")), (503, "store"),
       "the event during the outage is not acknowledged: %r" % body)
    served, refused, i = 0, 0, 0
    while time.monotonic() - t0 < OUTAGE_S:
        u = known[i % len(known)]
        st, js = r.lookup(u)
        eq((st, js and js.get("backend")), (200, where[u]),
           "known user %s %.1fs into the outage" % (u, time.monotonic() -
                                                    t0))
        served += 1
        if i % 10 == 0:
            st, js = r.lookup("new%03d" % i)
            eq(st, 503, "a new user during the outage: %r" % js)
            eq(js.get("reason"), "store", "the 503 names the store: %r" % js)
            check("backend" not in js and "host" not in js,
                  "no backend in a refusal: %r" % js)
            refused += 1
        i += 1
        time.sleep(0.05)
    pin = known[5]
    other = "b2" if where[pin] == "b1" else "b1"
    st = r.api("PUT", "/v1/users/" + q(pin), {"backend": other})
    eq(st[0], 503, "a pin during the outage: %r" % (st,))
    eq(r.user(pin)["backend"], where[pin], "a refused pin changes nothing")
    eq(len(fakes[where[waiting]].commands("sync", waiting)), synced_before,
       "the queued sync waits for the database")
    check(r.alive(), "roostd lives through the outage")
    eq(r.api("POST", "/v1/replication/pause")[0], 503,
       "an audited admin change during the outage")
    print("outage: %d known-user lookups answered, %d new users refused"
          % (served, refused))

    # The outage is logged, not once per retry: a few lines, not one for
    # each tick of the replication queue or each refused lookup.
    during = r.log().splitlines()[log_before:]
    print("%d log lines during the outage" % len(during))
    check(len(during) <= 12, "%d log lines in a %d s outage:\n%s" % (
        len(during), OUTAGE_S, "\n".join(during[:40])))
    pg.resume()
    st, js = wait_for("a new user placed after the database is back",
                      lambda: (lambda x: x if x[0] == 200 else None)(
                          r.lookup("after-outage")), 30)
    placed = js["backend"]
    status(r.api("PUT", "/v1/users/" + q(pin), {"backend": other}), 200,
           "the pin after the outage")
    wait_for("the waiting sync is done", lambda: len(
        fakes[where[waiting]].commands("sync", waiting)) > synced_before)
    for u in known:
        st, js = r.lookup(u)
        eq((st, js["backend"]), (200, other if u == pin else where[u]),
           "%s after the outage" % u)

    # What was acknowledged is in the database: a new roostd says so.
    r.stop()
    r.start()
    eq(r.user("after-outage")["backend"], placed,
       "the user placed after the outage")
    eq((r.user(pin)["backend"], r.user(pin)["pinned"]), (other, True),
       "the pin")
    for u in known:
        if u != pin:
            eq(r.lookup(u)[1]["backend"], where[u], "%s after restart"
               % u)
    r.secrets_absent(pg.password, KEY)


rt.run(main)
