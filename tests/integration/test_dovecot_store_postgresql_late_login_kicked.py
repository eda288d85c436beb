"""Two roostd on one PostgreSQL store: the proxy asks one (L, which also
gets the proxies' session events), the other (M, started first) holds the
role moves.  A login that L answered with b1 is held 2 s on its way
(a relay in front of b1's IMAP); meanwhile M moves the user to b2.  M
cannot wait for a login it did not answer, so the login reaches b1 after
the switch: L hears that session begin on b1, not on the user's backend,
and kicks it there at once.  The user ends on b2 alone, and the next
login lands on b2."""
import datetime
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
from roosttest import check, eq, status, wait_for  # noqa: E402

BASE_PORT = 27600
USERS = ["u1", "u2"]
DELAY_S = 2.0		# the move (about 0.4 s) is over well before
HOLD_S = 6.0
KICK_S = 3.0		# from L's kick to the session's end, at most


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    store = "postgresql:" + pg.conninfo
    rm = t.roost(store=store, move_timeout="10s")
    wait_for("M holds moves", lambda: "moves" in rt.roles(rm))
    rl = t.roost(store=store, events_token=True, log_level="debug")
    with riglib.routed_rig(t, rl, BASE_PORT, ",".join(USERS),
                           roost_urls=[rl.url]) as rig:
        b1, b2 = rig.backends[:2]
        eq(rt.role_holder([rm, rl], "moves"), rm, "M holds moves")
        inst = rig.inst("p1")
        status(rl.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
            "url": inst["doveadm_url"],
            "api_key": inst["doveadm_api_key"]}}), 201, "register p1")
        u = USERS[0]
        status(rl.api("PUT", "/v1/users/" + u, {"backend": b1}), 200,
               "%s on %s" % (u, b1))
        i1 = rig.inst(b1)
        relay = Relay(i1["address"], (i1["address"], i1["ports"]["imap"]),
                      delay=DELAY_S)
        status(rl.api("PATCH", "/v1/backends/" + b1,
                      {"ports": {"imap": relay.port}}), 200,
               "b1's IMAP behind the slow relay")
        wait_for("M sees %s on %s and the relay" % (u, b1), lambda: (
            rm.user(u)["backend"] == b1 and
            rm.backend(b1)["ports"]["imap"] == relay.port))

        out = {}
        first = threading.Thread(target=riglib.hold_imap_session,
                                 args=(rig, "p1", u, HOLD_S, out, "first"))
        first.start()
        check(relay.accepted.wait(10), "the first login reached the relay")
        # L answered b1 for it; M moves the user now.
        st, js = rm.api("POST", "/v1/moves", {"user": u, "backend": b2})
        eq(st, 202, "move %s to %s through M: %r" % (u, b2, js))
        mid = js["move"]["id"]
        for _ in range(200):
            m = rm.api("GET", "/v1/moves/%d" % mid)[1]
            if m["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        print("move: %s" % json.dumps(m))
        eq(m["state"], "done", "the move is over")
        moved = time.time()
        wait_for("L sees %s on %s" % (u, b2),
                 lambda: rl.user(u)["backend"] == b2)

        # The first login lands on b1 after the switch; L kicks it.
        said = "%s began a session on %s, not on its backend %s" % (u, b1, b2)
        riglib.wait_for(lambda: said in rl.log(), DELAY_S + 5, step=0.05)
        check(said in rl.log(), "L heard the late login begin on %s and "
              "kicked it: %r" % (b1, out))
        riglib.wait_for(lambda: u not in rig.users_on(b1), KICK_S,
                        step=0.05)
        check(u not in rig.users_on(b1), "%s's late session on %s gone "
              "within %.0f s of L's kick" % (u, b1, KICK_S))
        line = next(ln for ln in rl.log().splitlines() if said in ln)
        began = datetime.datetime.strptime(
            line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        print("%s's late session on %s: heard %.2f s after the move, gone "
              "%.2f s after L heard it" % (u, b1, began - moved,
                                           time.time() - began))
        second = threading.Thread(target=riglib.hold_imap_session,
                                  args=(rig, "p1", u, HOLD_S, out, "second"))
        second.start()
        wait_for("the second login on %s" % b2,
                 lambda: u in rig.users_on(b2))
        check(u not in rig.users_on(b1), "%s on %s and %s at once"
              % (u, b1, b2))
        eq(out.get("second"), "OK", "the second login went through")
        first.join(30)
        second.join(30)
        relay.close()
        eq(rl.user(u)["backend"], b2, "%s assigned to %s" % (u, b2))


if __name__ == "__main__":
    rt.run(main)
