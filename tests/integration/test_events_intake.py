"""POST /v1/events/dovecot/{name} takes what Dovecot's event exporter
sends, posted here by hand: a proxy's session start and end show in
GET /v1/users/{user} (sessions open, last session end, confirmed), a
backend's delivery confirms a user, and "confirmed" survives kill -9.
Anything but the events token as the Basic auth password is 403, an
unknown name 404, malformed JSON 400, a huge body 413, and none of them
changes anything; events for users without an assignment create none, and
unknown events are ignored.  A proxy removed from the registry takes its
sessions along.  The token never shows in the log."""

import time

import roosttest as rt
from roosttest import check, eq, status

EST = "proxy_session_established"
FIN = "proxy_session_finished"


def activity(r, user):
    js = r.user(user)
    return js["confirmed"], js["activity"]


def main(t):
    r = t.roost(events_token=True, activity_poll_interval="1s")
    r.add_backend("b1", "127.0.0.11")
    # A proxy whose doveadm API does not answer: its sessions come from
    # the events alone (the poll fails and must change nothing).
    status(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": "http://127.0.0.1:9/doveadm/v1", "api_key": "k"}}), 201,
        "register p1")
    for u in ("u1", "u2"):
        r.lookup_ok(u)
    eq(activity(r, "u1"), (False, {"sessions": 0, "proxies": {},
                                   "last_session_start": None,
                                   "last_session_end": None}),
       "a fresh assignment: unconfirmed, no sessions")

    # Refused, and nothing changes.
    bad = [
        (r.post_event("p1", EST, {"user": "u1"}, password=None), 403,
         "no Authorization"),
        (r.post_event("p1", EST, {"user": "u1"}, password="wrong"), 403,
         "wrong token"),
        (r.request("POST", "/v1/events/dovecot/p1", raw=b'{"event":"%s",'
                   b'"fields":{"user":"u1"}}' % EST.encode(),
                   token=r.events_token)[::2], 403,
         "the token as a bearer token"),
        (r.request("POST", "/v1/events/dovecot/p1", raw=b'{"event":"%s",'
                   b'"fields":{"user":"u1"}}' % EST.encode())[::2], 403,
         "the admin token"),
        (r.post_event("nosuch", EST, {"user": "u1"}), 404, "unknown name"),
        (r.post_event("p1", EST, raw=b'{"event": "proxy_sess'), 400,
         "malformed JSON"),
        (r.post_event("p1", EST, raw=b'["event"]'), 400, "not an object"),
        (r.post_event("p1", EST, raw=b'{"fields":{"user":"u1"}}'), 400,
         "no event name"),
        (r.post_event("p1", EST, {"usr": "u1"}), 400, "no fields.user"),
        (r.post_event("p1", EST, raw=b'{"event":"%s","fields":{"user":'
                      b'"u1"},"pad":"%s"}' % (EST.encode(), b"x" * 70000)),
         413, "a body over 64 KiB"),
    ]
    for (st, out), want, what in bad:
        eq(st, want, "%s: %r" % (what, out[:200]))
    eq(activity(r, "u1")[0], False, "refused events confirm nothing")
    eq(activity(r, "u1")[1]["sessions"], 0, "refused events open nothing")

    # Unknown events, and events of users without an assignment, are
    # ignored: no session, no assignment made.
    eq(r.post_event("p1", "imap_command_finished", {"user": "u1"})[0], 204,
       "an unknown event is accepted")
    eq(r.post_event("p1", EST, {"user": "ghost"})[0], 204,
       "a session of a user without an assignment is accepted")
    eq(r.user("ghost")["assigned"], False, "and makes no assignment")
    eq(activity(r, "u1"), (False, {"sessions": 0, "proxies": {},
                                   "last_session_start": None,
                                   "last_session_end": None}),
       "ignored events change nothing")

    # A session starts, a failed login ends (no session of its own), the
    # session ends.  Case follows username_format (%Lu).
    t0 = int(time.time())
    eq(r.post_event("p1", EST, {"user": "U1", "dest_host": "127.0.0.11"})[0],
       204, "session established")
    conf, act = activity(r, "u1")
    eq((conf, act["sessions"], act["proxies"]), (True, 1, {"p1": 1}),
       "u1 is confirmed with one session on p1")
    check(act["last_session_start"] >= t0, "last_session_start set: %r" % act)
    eq(r.post_event("p1", FIN, {"user": "u1", "error":
                                "[AUTHENTICATIONFAILED] Authentication "
                                "failed."})[0], 204, "a failed login ends")
    eq(activity(r, "u1")[1]["sessions"], 1,
       "a failed login's finish ends no session")
    eq(r.post_event("p1", FIN, {"user": "u1"})[0], 204, "session finished")
    conf, act = activity(r, "u1")
    eq((conf, act["sessions"], act["proxies"]), (True, 0, {}),
       "no session open")
    check(act["last_session_end"] is not None and
          act["last_session_end"] >= t0, "last_session_end set: %r" % act)
    eq(r.post_event("p1", FIN, {"user": "u1"})[0], 204,
       "an end without a start")
    eq(activity(r, "u1")[1]["sessions"], 0, "never goes below zero")

    # A delivery on a backend confirms a user too.
    eq(activity(r, "u2")[0], False, "u2 unconfirmed")
    eq(r.post_event("b1", "mail_delivery_finished", {"user": "u2"})[0], 204,
       "a delivery on b1")
    eq(activity(r, "u2")[0], True, "a delivery confirms u2")

    # Confirmed is stored (by the maintenance passes, within a second).
    time.sleep(1.0)
    r.restart()
    eq(activity(r, "u1")[0], True, "u1 still confirmed after kill -9")
    eq(activity(r, "u2")[0], True, "u2 still confirmed after kill -9")
    r.lookup_ok("u3")
    eq(activity(r, "u3")[0], False, "a new assignment is not")

    # A proxy taken out of the registry takes its sessions along: left
    # counted, they would keep the user from ever expiring.
    eq(r.post_event("p1", EST, {"user": "u1"})[0], 204, "a session on p1")
    eq(activity(r, "u1")[1]["sessions"], 1, "counted")
    status(r.api("DELETE", "/v1/proxies/p1"), 200, "remove p1")
    deadline = time.monotonic() + 5
    while activity(r, "u1")[1]["sessions"] and time.monotonic() < deadline:
        time.sleep(0.1)
    eq(activity(r, "u1")[1]["sessions"], 0, "p1's sessions ended with it")
    eq(r.post_event("p1", EST, {"user": "u1"})[0], 404,
       "events for p1 are refused now")

    r.secrets_absent(r.events_token)


rt.run(main)
