"""A user whose replica was never synced is not failed over onto it: when
its backend dies, its logins get a temporary failure and roostd raises an
alarm, instead of an empty mailbox (and an INBOX that dsync could never
merge with the old one).  An admin can force it (`backend
force-failover`): the next login lands on the replica.  Users whose
replica is current fail over as usual."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 29300
USERS = ["u%d" % i for i in range(1, 9)]


def repl_user(r, u):
    code, js = r.api("GET", "/v1/replication/users/" + u)
    eq(code, 200, "replication record of %s" % u)
    return js


def main(t):
    r = t.roost(events_token=True, replication="yes", probe_interval="1s",
                probe_timeout="1s", probe_fall="2", probe_rise="2")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        b1, b2 = rig.backends[:2]
        # Syncs toward b2 go to a port where nothing listens: the
        # replicas on b2 never get their first sync.
        code, js = r.api("PATCH", "/v1/backends/" + b2,
                         {"ports": {"doveadm": BASE_PORT + 99}})
        eq(code, 200, "PATCH %s: %r" % (b2, js))
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK",
               "%s logs in" % u)
        home = {u: r.user(u)["backend"] for u in USERS}
        on_b1 = [u for u in USERS if home[u] == b1]
        on_b2 = [u for u in USERS if home[u] == b2]
        check(on_b1 and on_b2, "users on both backends: %r" % home)
        # b2's users have a current replica on b1; b1's users never will.
        riglib.wait_for(lambda: all(repl_user(r, u)["replica_current"]
                                    for u in on_b2), 20)
        riglib.wait_for(lambda: all(repl_user(r, u)["failures"] > 0
                                    for u in on_b1), 20)
        for u in on_b1:
            js = repl_user(r, u)
            eq(js["replica_current"], False, "%s: replica not current" % u)
            check(js["failures"] > 0 and js["last_error"],
                  "%s: its failed sync is shown: %r" % (u, js))

        rig.restart(b1, kill=True, start=False)
        riglib.wait_for(lambda: r.backend(b1)["health"]["state"] ==
                        "failed", 15)
        eq(r.backend(b1)["health"]["state"], "failed", "%s failed" % b1)
        u = on_b1[0]
        st, line = riglib.imap_login_from(rig, "p1", u,
                                          source=riglib.fresh_source())
        check(st == "NO" and "[UNAVAILABLE]" in line,
              "%s gets a temporary failure, not an empty mailbox: %r %r"
              % (u, st, line))
        eq(r.user(u)["backend"], b1, "%s stays assigned to %s" % (u, b1))
        eq(riglib.messages_with_id(rig, b2, u, "<none@x>"), 0,
           "nothing of %s was created on %s" % (u, b2))
        check("ALARM: user %s is not failed over" % u in r.log(),
              "the alarm is logged")
        code, s = r.api("GET", "/v1/replication")
        check(s["totals"]["failovers_refused"] >= 1,
              "refusals counted: %r" % s["totals"])

        # The admin forces it: the next login lands on the replica.
        code, js = r.api("POST", "/v1/backends/%s/force-failover" % b1)
        eq(code, 200, "force-failover: %r" % js)
        eq(riglib.imap_login_from(rig, "p1", u,
                                  source=riglib.fresh_source())[0], "OK",
           "%s logs in once forced" % u)
        info = r.user(u)
        eq((info["backend"], info["failed_over"]), (b2, True),
           "%s forced over to %s" % (u, b2))
        code, audit = r.api("GET", "/v1/audit")
        check(any(a["action"] == "backend.force_failover"
                  for a in audit["entries"]), "the override is audited")


rt.run(main)
