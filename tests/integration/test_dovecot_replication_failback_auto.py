"""failback = auto: once a failed backend is healthy again and synced for
its users, they go home by themselves, each with a final sync, and no
message delivered before, during or after the outage is lost or doubled."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29400
USERS = ["u%d" % i for i in range(1, 7)]


def deliver(rig, users, tag):
    return {u: riglib.lmtp_deliver(rig, u, subject=tag) for u in users}


def replica_current(r, u):
    code, js = r.api("GET", "/v1/replication/users/" + u)
    return code == 200 and js["replica_current"]


def main(t):
    r = t.roost(events_token=True, replication="yes", failback="auto",
                probe_interval="1s", probe_timeout="1s", probe_fall="2",
                probe_rise="2")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        b1, b2 = rig.backends[:2]
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK", "login %s" % u)
        want = {u: [] for u in USERS}
        for u, mid in deliver(rig, USERS, "before").items():
            want[u].append(mid)
        on_b1 = [u for u in USERS if r.user(u)["backend"] == b1]
        check(on_b1, "users on %s" % b1)
        riglib.wait_for(lambda: all(
            sorted(rig.message_ids(b2, u)) == sorted(want[u])
            for u in on_b1), 20, 0.2)

        rig.restart(b1, kill=True, start=False)
        riglib.wait_for(lambda: r.backend(b1)["health"]["state"] ==
                        "failed", 15)
        for u, mid in deliver(rig, USERS, "during").items():
            want[u].append(mid)
        for u in on_b1:
            eq((r.user(u)["backend"], r.user(u)["failed_over"]), (b2, True),
               "%s failed over" % u)

        rig.restart(b1)
        # No admin action: home once b1 is synced for them.
        riglib.wait_for(lambda: all(r.user(u)["backend"] == b1
                                    for u in on_b1), 40, 0.2)
        for u in on_b1:
            info = r.user(u)
            eq((info["backend"], info["replica"], info["failed_over"]),
               (b1, b2, False), "%s home again by itself" % u)
        check("failback to %s done" % b1 in r.log() or
              "failback" in r.log(), "the failback is logged")
        for u, mid in deliver(rig, USERS, "after").items():
            want[u].append(mid)
        riglib.wait_for(lambda: all(
            sorted(rig.message_ids(r.user(u)["replica"], u)) ==
            sorted(want[u]) for u in USERS), 20, 0.2)
        for u in USERS:
            info = r.user(u)
            for b in (info["backend"], info["replica"]):
                eq(sorted(rig.message_ids(b, u)), sorted(want[u]),
                   "%s on %s: every message once" % (u, b))


rt.run(main)
