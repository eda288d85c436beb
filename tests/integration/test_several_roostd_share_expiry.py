"""Three roostd on one PostgreSQL store (pgtmp, no Dovecot) with
unconfirmed_expire = 1m (its least): only the holder of role "moves" forgets
assignments, and it asks the store first; no instance places a user again
at a lookup because its own memory says the user is unconfirmed.  A user
placed off its hash through the second instance, whose session only that
instance saw (the proxy's event reached it, not the holder), is neither
forgotten nor placed again when the third instance, which never saw it in
a session, answers it after the minute: its confirmation is in the store.
A user nobody confirmed is forgotten after that minute, by the holder, and
the others forget it too (the change feed)."""
# run.py: alongside

import time

import roosttest as rt
from roosttest import check, eq, status, wait_for

EXPIRE_S = 60


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    store = "postgresql:" + pg.conninfo
    kw = dict(store=store, events_token=True,
              unconfirmed_expire="%ds" % EXPIRE_S,
              activity_poll_interval="never")
    r1 = t.roost(**kw)
    holder = wait_for("role moves held", lambda: rt.role_holder([r1],
                                                                "moves"))
    r2 = t.roost(**kw)
    r3 = t.roost(**kw)
    eq(rt.role_holder([r1, r2, r3], "moves"), holder,
       "the first one holds it")
    status(r1.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": "http://127.0.0.1:9/doveadm/v1", "api_key": "k"}}), 201,
        "proxy p1")
    r1.add_backend("b1", "127.0.0.11")
    r1.add_backend("b2", "127.0.0.12")
    for r in (r2, r3):
        wait_for("another instance sees the proxy and the backends",
                 lambda r=r: len(r.backends()) == 2 and status(r.api(
                     "GET", "/v1/proxies"), 200, "proxies")["proxies"])

    # It is placed off its hash (its hashed backend down then), so
    # that placing it again would show.
    seen = next(u for u in ("seen%d" % i for i in range(100))
                if r2.user(u)["hashed"] == "b1")
    r1.patch_backend("b1", state="down")
    wait_for("b1 down everywhere", lambda: all(
        r.backend("b1")["state"] == "down" for r in (r2, r3)))
    eq(r2.lookup_ok(seen)["backend"], "b2", "placed on b2 while b1 is down")
    r1.patch_backend("b1", state="up")
    wait_for("b1 up everywhere", lambda: all(
        r.backend("b1")["state"] == "up" for r in (r2, r3)))
    r2.lookup_ok("guessed")
    # Its login succeeded: the proxy's event reaches r2 only.
    st, body = r2.post_event("p1", "proxy_session_established",
                             {"user": seen})
    eq(st, 204, "session event to the second instance: %r" % body)
    st, body = r2.post_event("p1", "proxy_session_finished",
                             {"user": seen})
    eq(st, 204, "session end to the second instance: %r" % body)
    wait_for("the confirmation is in the store", lambda: pg.query(
        "SELECT confirmed FROM users WHERE \"user\" = '%s'" % seen) ==
        [["1"]])
    check(not r1.user(seen)["confirmed"],
          "the holder itself never saw a session of it")

    wait_for("the guessed name is forgotten", lambda: not pg.query(
        "SELECT 1 FROM users WHERE \"user\" = 'guessed'"),
        EXPIRE_S + 60)	# the expiry sweep covers the map in 30 s
    wait_for("the other instance forgets it too",
             lambda: r2.user("guessed")["assigned"] is False)
    time.sleep(5)	# more expiry passes
    eq(pg.query("SELECT backend FROM users WHERE \"user\" = '%s'" % seen),
       [["b2"]], "the confirmed user is kept")
    # An instance that never saw it in a session (memory: unconfirmed for
    # over a minute) answers where the store has it, not the hash.
    check(not r3.user(seen)["confirmed"], "r3 saw no session of it")
    eq(r3.lookup_ok(seen)["backend"], "b2",
       "a lookup through an instance that never saw its session")
    eq(pg.query("SELECT backend FROM users WHERE \"user\" = '%s'" % seen),
       [["b2"]], "and the store still has it there")
    check(r1.user(seen)["assigned"], "and the holder still answers it")
    check("forgot" in r1.log() and "forgot" not in r2.log() + r3.log(),
          "only the holder forgets assignments")


rt.run(main)
