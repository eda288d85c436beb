"""The proxy's own session events (the exporter of the shipped proxy
snippet) reach roostd and mark the user active: a login through the proxy
shows as a session on p1 in GET /v1/users/{user} and confirms the user, the
logout ends it.  A name that no backend knows gets no session and stays
unconfirmed.  Polling the proxy's sessions makes up for what the events
missed: a session open across a kill -9 of roostd is found again, and a
session the proxy does not have is ended."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 28300
POLL = 3	# more than a failed login lasts (2 s): see below


def act(r, user):
    js = r.user(user)
    return js["confirmed"], js["activity"]["sessions"], \
        js["activity"]["proxies"], js["activity"]["last_session_end"]


def main(t):
    r = t.roost(events_token=True, activity_poll_interval="%ds" % POLL)
    with riglib.routed_rig(t, r, BASE_PORT, "u1,u2") as rig:
        p1 = rig.inst("p1")
        st, js = r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
            "url": p1["doveadm_url"], "api_key": p1["doveadm_api_key"]}})
        eq(st, 201, "register the proxy: %r" % js)

        c = riglib.Imap(rig, "p1", timeout=20)
        eq(c.login("u1")[0], "OK", "u1 logs in through p1")
        got = riglib.wait_for(lambda: act(r, "u1")[:3] == (True, 1,
                                                            {"p1": 1}), 5)
        check(got, "the proxy's event shows u1's session on p1: %r"
              % (act(r, "u1"),))
        eq(c.cmd("LOGOUT")[0], "OK", "u1 logs out")
        c.close()
        got = riglib.wait_for(lambda: act(r, "u1")[1] == 0, 5)
        check(got, "the logout ends it: %r" % (act(r, "u1"),))
        check(act(r, "u1")[3] is not None, "last_session_end is set")

        # A guessed name: the lookup assigns it (nopassword), the backend
        # refuses the login, no session is ever established.  (2.3's
        # proxy lists the login while the backend takes its time to say
        # no: one poll may count it, two in a row never do.)
        eq(riglib.imap_login_from(rig, "p1", "nosuch",
                                  source=riglib.fresh_source())[0], "NO",
           "a name no backend knows fails")
        eq(r.user("nosuch")["assigned"], True, "the guess got an assignment")
        riglib.wait_for(lambda: act(r, "nosuch")[1] == 0, POLL + 3)
        time.sleep(POLL + 1)
        eq(act(r, "nosuch")[:2], (False, 0), "but no session, unconfirmed, "
           "also after the polls")

        # Sessions are not stored: after a kill -9 roostd knows none, and
        # the poll after the restart finds u2's again.
        c = riglib.Imap(rig, "p1", timeout=20)
        eq(c.login("u2")[0], "OK", "u2 logs in")
        check(riglib.wait_for(lambda: act(r, "u2")[1] == 1, 5),
              "u2's session seen")
        r.kill()
        r.start()
        got = riglib.wait_for(lambda: act(r, "u2")[:3] == (True, 1,
                                                            {"p1": 1}),
                              POLL + 6)
        check(got, "polling p1 finds u2's session: %r" % (act(r, "u2"),))

        # A session the proxy does not have (its end was lost) is ended by
        # the next poll.
        eq(r.post_event("p1", "proxy_session_established",
                        {"user": "u1"})[0], 204, "a start with no session")
        eq(act(r, "u1")[1], 1, "u1 counted open")
        got = riglib.wait_for(lambda: act(r, "u1")[1] == 0, POLL + 6)
        check(got, "the poll ends it: %r" % (act(r, "u1"),))
        eq(act(r, "u2")[1], 1, "u2's real session stays open")
        c.cmd("LOGOUT")
        c.close()


rt.run(main)
