"""A login that roostd answered just before a move marked the user, and
whose proxy then takes long to reach the old backend (a relay in front of
b1's IMAP delays each connection by 0.8 s, as a loaded proxy or network
can), must not leave the user on two backends at once: when the move is
over and the user has logged in again on the new backend, the old
backend has no session of the user."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from relay import Relay  # noqa: E402
from roosttest import check, eq, status  # noqa: E402

BASE_PORT = 26800
USERS = ["u1", "u2", "u3", "u4"]
DELAY_S = 0.8
HOLD_S = 4.0


def main(t):
    r = t.roost(move_timeout="10s", events_token=True)
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        b1, b2 = rig.backends[:2]
        inst = rig.inst("p1")
        eq(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
            "url": inst["doveadm_url"],
            "api_key": inst["doveadm_api_key"]}})[0], 201, "register p1")
        u = USERS[0]
        status(r.api("PUT", "/v1/users/" + u, {"backend": b1}), 200,
               "%s on %s" % (u, b1))
        i1 = rig.inst(b1)
        relay = Relay(i1["address"], (i1["address"], i1["ports"]["imap"]),
                      delay=DELAY_S)
        status(r.api("PATCH", "/v1/backends/" + b1,
                     {"ports": {"imap": relay.port}}), 200,
               "b1's IMAP behind the slow relay")

        out = {}
        first = threading.Thread(target=riglib.hold_imap_session,
                                 args=(rig, "p1", u, HOLD_S, out, "first"))
        first.start()
        check(relay.accepted.wait(10), "the first login reached the relay")
        # roostd has answered b1 for it: the move marks the user now.
        st, js = r.api("POST", "/v1/moves", {"user": u, "backend": b2})
        eq(st, 202, "move %s to %s: %r" % (u, b2, js))
        mid = js["move"]["id"]
        for _ in range(200):
            m = r.api("GET", "/v1/moves/%d" % mid)[1]
            if m["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        print("move: %s" % json.dumps(m))
        eq(m["state"], "done", "the move is over")
        second = threading.Thread(target=riglib.hold_imap_session,
                                  args=(rig, "p1", u, HOLD_S, out, "second"))
        second.start()
        time.sleep(DELAY_S + 0.5)
        on1, on2 = rig.users_on(b1), rig.users_on(b2)
        print("after the move: %s on %s: %s, on %s: %s" % (
            u, b1, u in on1, b2, u in on2))
        first.join(30)
        second.join(30)
        relay.close()
        check(not (u in on1 and u in on2), "%s on %s and %s at once"
              % (u, b1, b2))
        eq((out.get("first"), out.get("second")), ("OK", "OK"),
           "both logins went through")
        check(u in on2, "%s on %s after the move" % (u, b2))
        eq(r.user(u)["backend"], b2, "%s assigned to %s" % (u, b2))


if __name__ == "__main__":
    rt.run(main)
