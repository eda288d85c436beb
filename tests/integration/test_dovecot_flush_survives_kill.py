"""A flush of a backend holding 1000 users, with open IMAP sessions among
them, on real Dovecot: roostd is killed (-9) in the middle and restarted;
the flush is taken up again and ends with every user on the other
backend, every move done or failed (none left open, none half done), the
open sessions kicked (their clients saw BYE) and the old backend's `who`
empty.  Prints the flush rate."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27800
N = 1000


def main(t):
    r = t.roost(move_timeout="20s")
    with riglib.routed_rig(t, r, BASE_PORT, str(N)) as rig:
        b1, b2 = rig.backends[:2]
        p1 = rig.inst("p1")
        eq(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
            "url": p1["doveadm_url"], "api_key": p1["doveadm_api_key"]}})[0],
           201, "register the proxy")
        r.patch_backend(b2, state="drain")
        conn = rt.Conn(r.port)
        hdr = {"Authorization": "Bearer " + r.admin_token}
        for i in range(1, N + 1):
            st, _, _ = conn.request(
                "GET", "/v1/lookup?user=u%d&protocol=imap" % i, headers=hdr)
            eq(st, 200, "place u%d" % i)
        conn.close()
        r.patch_backend(b2, state="up")
        r.patch_backend(b1, state="drain")
        eq(r.backend(b1)["users"], N, "every user on %s" % b1)

        sessions = []
        for u in ("u1", "u2", "u3", "u4", "u5"):
            c = riglib.Imap(rig, "p1", timeout=30)
            eq(c.login(u)[0], "OK", "%s session" % u)
            eq(c.cmd("SELECT INBOX")[0], "OK", "%s SELECT" % u)
            sessions.append(c)

        t0 = time.monotonic()
        st, js = r.api("POST", "/v1/backends/%s/flush" % b1)
        eq(st, 202, "flush accepted: %r" % js)
        time.sleep(0.8)
        left_at_kill = r.backend(b1)["users"]
        r.restart()
        check("taken up again" in r.log(), "the flush is taken up again")
        for _ in range(1200):
            st, js = r.api("GET", "/v1/moves?state=open&limit=1")
            if not js["jobs"] and js["open"] == 0:
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        print("flush of %d users with a kill -9 after 0.8 s (%d left then):"
              " %.1f s, %.0f users/s" % (N, left_at_kill, took, N / took))
        check(0 < left_at_kill < N, "the kill came mid-flush (%d left)" %
              left_at_kill)
        eq(r.backend(b1)["users"], 0, "%s is empty" % b1)
        eq(r.backend(b2)["users"], N, "every user on %s" % b2)
        st, js = r.api("GET", "/v1/moves?limit=10000")
        states = {}
        for m in js["moves"]:
            states[m["state"]] = states.get(m["state"], 0) + 1
        check(set(states) <= {"done", "failed"} and states.get("done", 0) >=
              N, "every move done or failed, none open: %r" % states)
        for c in sessions:
            rest = c.rest()
            c.close()
            check(b"BYE" in rest, "an open session got BYE: %r" % rest)
        res = rig.doveadm_http(b1, "who", {})
        eq(res[0][1:], [[], "t"], "no session left on %s" % b1)


rt.run(main)
