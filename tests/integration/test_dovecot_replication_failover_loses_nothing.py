"""Replication carries a user through the loss of its backend and back,
with no message lost or duplicated.

Deliveries through the proxy are synced to each user's replica.  The
Dovecot of one backend is killed: its users log in through the proxy on
their replica and see every message delivered before the kill; mail
delivered during the outage lands there.  When the backend is back it is
synced from the new backends first, then a failback moves its
users home (a move whose last step is a final sync).  In the end every
user has on its backend and on its replica exactly the Message-IDs that
were delivered to it, each once.  Prints the counts of lost and duplicated
messages (both must be 0)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29200
USERS = ["u%d" % i for i in range(1, 9)]
BEFORE = 100	# deliveries before the kill
DURING = 100	# deliveries while the backend is down


def deliver_many(rig, users, n, tag):
    """n deliveries through the proxy, round robin over users;
    {user: [message-id]}."""
    out = {u: [] for u in users}
    for i in range(n):
        u = users[i % len(users)]
        out[u].append(riglib.lmtp_deliver(rig, u, subject="%s %d" % (tag, i)))
    return out


def repl_user(r, u):
    code, js = r.api("GET", "/v1/replication/users/" + u)
    eq(code, 200, "replication record of %s" % u)
    return js


def all_synced(rig, r, users, want):
    """Every user's replica holds exactly what was delivered to it."""
    for u in users:
        info = r.user(u)
        if sorted(rig.message_ids(info["replica"], u)) != sorted(want[u]):
            return False
    return True


def main(t):
    r = t.roost(events_token=True, replication="yes", probe_interval="1s",
                probe_timeout="1s", probe_fall="2", probe_rise="2")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        b1, b2 = rig.backends[:2]
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK",
               "%s logs in" % u)
        riglib.wait_for(lambda: all(repl_user(r, u)["replica_current"]
                                    for u in USERS), 20)
        for u in USERS:
            eq(repl_user(r, u)["replica_current"], True,
               "%s: first full sync made its replica current" % u)
        home = {u: r.user(u)["backend"] for u in USERS}
        on_b1 = [u for u in USERS if home[u] == b1]
        check(on_b1 and len(on_b1) < len(USERS),
              "users on both backends: %r" % home)

        want = deliver_many(rig, USERS, BEFORE, "before")
        riglib.wait_for(lambda: all_synced(rig, r, USERS, want), 30, 0.2)
        check(all_synced(rig, r, USERS, want),
              "every delivery reached the replicas before the kill")

        # b1's Dovecot dies; the probes fail it.
        rig.restart(b1, kill=True, start=False)
        riglib.wait_for(lambda: r.backend(b1)["health"]["state"] ==
                        "failed", 15)
        eq(r.backend(b1)["health"]["state"], "failed", "%s failed" % b1)
        # Its users log in on their replica and see all their mail.
        for u in on_b1:
            c = riglib.Imap(rig, "p1", source=riglib.fresh_source())
            try:
                eq(c.login(u)[0], "OK", "%s logs in during the outage" % u)
                st, _, untagged = c.cmd("SELECT INBOX")
                eq(st, "OK", "%s: SELECT" % u)
                exists = [x for x in untagged if x.endswith(" EXISTS")]
                eq(exists, ["* %d EXISTS" % len(want[u])],
                   "%s sees every message delivered before the kill" % u)
                c.cmd("LOGOUT")
            finally:
                c.close()
            info = r.user(u)
            eq((info["backend"], info["replica"], info["failed_over"]),
               (b2, b1, True), "%s failed over to %s" % (u, b2))
        # Mail keeps coming while b1 is down: all of it to b2.
        during = deliver_many(rig, USERS, DURING, "during")
        for u in USERS:
            want[u] += during[u]
        for u in on_b1:
            eq(sorted(rig.message_ids(b2, u)), sorted(want[u]),
               "%s: everything on %s during the outage" % (u, b2))

        # b1 is back: synced from the new backends before failback.
        rig.restart(b1)
        riglib.wait_for(lambda: r.backend(b1)["health"]["state"] == "ok", 20)
        eq(r.backend(b1)["health"]["state"], "ok", "%s ok again" % b1)
        riglib.wait_for(lambda: all(repl_user(r, u)["replica_current"]
                                    for u in on_b1), 30, 0.2)
        for u in on_b1:
            eq(repl_user(r, u)["replica_current"], True,
               "%s: %s synced from %s once back" % (u, b1, b2))
        code, js = r.api("POST", "/v1/backends/%s/failback" % b1)
        eq(code, 202, "failback of %s: %r" % (b1, js))
        riglib.wait_for(lambda: all(r.user(u)["backend"] == b1
                                    for u in on_b1), 30, 0.2)
        for u in on_b1:
            info = r.user(u)
            eq((info["backend"], info["replica"], info["failed_over"]),
               (b1, b2, False), "%s back home on %s" % (u, b1))
        check("failback" in r.log(), "the failback is logged")

        # Settle: every replica current and idle, then compare.
        riglib.wait_for(lambda: all_synced(rig, r, USERS, want), 30, 0.2)
        lost = dup = 0
        for u in USERS:
            info = r.user(u)
            for b in (info["backend"], info["replica"]):
                got = rig.message_ids(b, u)
                lost += len(set(want[u]) - set(got))
                dup += len(got) - len(set(got))
                eq(sorted(got), sorted(want[u]),
                   "%s on %s: exactly what was delivered" % (u, b))
        print("deliveries: %d; lost: %d; duplicated: %d" %
              (BEFORE + DURING, lost, dup))


rt.run(main)
