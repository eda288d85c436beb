"""Two roostd on one PostgreSQL store (pgtmp, no Dovecot) with
unconfirmed_expire = 1m (its least): only the holder of role "moves" forgets
assignments, and it asks the store first.  A user placed through the other
instance, whose session that instance saw (the proxy's event reached it,
not the holder), is never forgotten: its confirmation is in the store.
A user nobody confirmed is forgotten after that minute, by the holder, and
the other instance forgets it too (the change feed)."""
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
    eq(rt.role_holder([r1, r2], "moves"), holder, "the first one holds it")
    status(r1.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": "http://127.0.0.1:9/doveadm/v1", "api_key": "k"}}), 201,
        "proxy p1")
    r1.add_backend("b1", "127.0.0.11")
    r1.add_backend("b2", "127.0.0.12")
    wait_for("the second instance sees the proxy and the backends",
             lambda: len(r2.backends()) == 2 and status(r2.api(
                 "GET", "/v1/proxies"), 200, "proxies")["proxies"])

    r2.lookup_ok("seen")
    r2.lookup_ok("guessed")
    # The login of "seen" succeeded: the proxy's event reaches r2 only.
    st, body = r2.post_event("p1", "proxy_session_established",
                             {"user": "seen"})
    eq(st, 204, "session event to the second instance: %r" % body)
    st, body = r2.post_event("p1", "proxy_session_finished",
                             {"user": "seen"})
    eq(st, 204, "session end to the second instance: %r" % body)
    wait_for("the confirmation is in the store", lambda: pg.query(
        "SELECT confirmed FROM users WHERE \"user\" = 'seen'") == [["1"]])
    check(not r1.user("seen")["confirmed"],
          "the holder itself never saw a session of it")

    wait_for("the guessed name is forgotten", lambda: not pg.query(
        "SELECT 1 FROM users WHERE \"user\" = 'guessed'"),
        EXPIRE_S + 60)	# the expiry sweep covers the map in 30 s
    wait_for("the other instance forgets it too",
             lambda: r2.user("guessed")["assigned"] is False)
    time.sleep(5)	# more expiry passes
    eq(pg.query("SELECT backend FROM users WHERE \"user\" = 'seen'"),
       [[r2.user("seen")["backend"]]], "the confirmed user is kept")
    check(r1.user("seen")["assigned"], "and the holder still answers it")
    check("forgot" in r1.log() and "forgot" not in r2.log(),
          "only the holder forgets assignments")


rt.run(main)
