"""Backends weighted 1:3 get about a quarter and three quarters of 200 users
logging in through a real Dovecot proxy, and each user's login reaches
exactly the one backend roostd says."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq, status  # noqa: E402

BASE_PORT = 26600
N = 200


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, str(N)) as rig:
        r.patch_backend("b1", weight=100)
        r.patch_backend("b2", weight=300)
        users = rig.info["users"]
        eq(len(users), N, "rig users")
        for u in users:
            st, line = rig.imap_login("p1", u)
            eq(st, "OK", "%s: login through p1 (%s)" % (u, line))

        js = status(r.api("GET", "/v1/status"), 200, "GET /v1/status")
        count = {b["name"]: b["users"] for b in js["backends"]}
        eq(sum(count.values()), N, "users assigned in /v1/status %r" % count)
        for b, want in (("b1", N // 4), ("b2", 3 * N // 4)):
            check(abs(count[b] - want) <= N // 10,
                  "%s has %d users, want %d +- %d (weights 100:300)"
                  % (b, count[b], want, N // 10))

        said = {x["user"]: x["backend"] for x in r.all_users()}
        seen = riglib.logins_by_backend(rig)
        for u in users:
            eq(seen.get(u), {said.get(u): 1},
               "%s: logins per backend (roostd says %s)" % (u, said.get(u)))
        for b in rig.backends:
            eq(sum(1 for u in users if said[u] == b), count[b],
               "%s: /v1/users agrees with /v1/status" % b)


rt.run(main)
