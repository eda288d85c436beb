"""user_expire counts from the end of a user's last session (the proxies'
session events), not from the last lookup, and a user with a session open
never expires; unconfirmed_expire forgets an assignment that never saw a
session or a delivery (a name guessed at the proxy), however often it is
looked up, while one confirmed before a kill -9 is kept.  Events are posted
by hand; about 70 s (both settings are at least 60 s)."""
# run.py: alongside (about a minute of waiting for user_expire)

import time

import roosttest as rt
from roosttest import check, eq, status

EXPIRE = 60
EST = "proxy_session_established"
FIN = "proxy_session_finished"


def event(r, name, user):
    eq(r.post_event("p1", name, {"user": user})[0], 204,
       "%s %s" % (name, user))


def main(t):
    r = t.roost(events_token=True, user_expire=EXPIRE,
                unconfirmed_expire=EXPIRE)
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    status(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": "http://127.0.0.1:9/doveadm/v1", "api_key": "k"}}), 201,
        "register p1")

    # Users placed while b1 is down sit on b2; pick ones the hash sends to
    # b1, so that an expired assignment is visible as a move to b1.
    r.patch_backend("b1", state="down")
    cands = ["act%03d" % i for i in range(80)]
    for u in cands:
        eq(r.lookup_ok(u)["backend"], "b2", "placed on b2 while b1 is down")
    r.patch_backend("b1", state="up")
    off = [u for u in cands if r.user(u)["hashed"] == "b1"]
    check(len(off) >= 5, "enough users off the hash (%d)" % len(off))
    guess, kept, ended, late, still = off[0:5]
    print("guess %s, kept %s, ended %s, late %s, still open %s"
          % (guess, kept, ended, late, still))
    t0 = time.monotonic()

    # `kept` logs in and out before a crash: confirmed, and that is
    # stored.  `guess` never logs in.
    event(r, EST, kept)
    event(r, FIN, kept)
    time.sleep(1.0)
    r.restart()
    eq(r.user(kept)["confirmed"], True, "%s confirmed across kill -9" % kept)
    eq(r.user(guess)["confirmed"], False, "%s never confirmed" % guess)

    # After the restart (sessions are not stored): `ended` has a session
    # that ends at once, `late` one that ends 15 s later, `still` one that
    # stays open.  Nobody looks them up again.
    for u in (ended, late, still):
        event(r, EST, u)
    event(r, FIN, ended)
    time.sleep(max(0.0, 15 - (time.monotonic() - t0)))
    event(r, FIN, late)
    eq(r.user(late)["activity"]["sessions"], 0, "%s's session ended" % late)
    eq(r.user(still)["activity"]["sessions"], 1, "%s's session is open"
       % still)

    # `kept` and `guess` are both looked up now and then: lookups keep a
    # confirmed user, never a guessed name.
    while time.monotonic() - t0 < EXPIRE + 6:
        time.sleep(min(15, EXPIRE + 6 - (time.monotonic() - t0)))
        eq(r.lookup_ok(kept)["backend"], "b2", "%s kept while looked up"
           % kept)
        r.lookup_ok(guess)

    eq(r.lookup_ok(guess)["backend"], "b1",
       "%s, looked up but never in a session, forgotten after "
       "unconfirmed_expire" % guess)
    eq(r.lookup_ok(kept)["backend"], "b2",
       "%s, confirmed before kill -9, is not" % kept)
    eq(r.lookup_ok(ended)["backend"], "b1",
       "%s idle past user_expire since its session ended" % ended)
    eq(r.lookup_ok(still)["backend"], "b2",
       "%s, its session open, never expires" % still)
    # Last looked up, and roostd restarted, over user_expire ago: only
    # the end of its session keeps it.
    eq(r.lookup_ok(late)["backend"], "b2",
       "%s counts from its session's end, %.0f s ago, not its last lookup"
       % (late, time.monotonic() - t0 - 15))


rt.run(main)
