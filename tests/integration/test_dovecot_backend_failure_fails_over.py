"""A backend whose Dovecot dies is marked failed by the probes within the
probe_fall rounds, and its users log in on the other backend through the
proxy (their mail then lands there); when it comes back it is marked ok
again and its former users stay where they went.  Prints the failover time:
from the kill to the first successful login of an affected user."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27500
USERS = ["u%d" % i for i in range(1, 13)]


def health(r, name):
    return r.backend(name)["health"]


def main(t):
    r = t.roost(probe_interval="1s", probe_timeout="1s", probe_fall="2",
                probe_rise="2")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        b1, b2 = rig.backends[:2]
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK", "%s logs in" % u)
        on_b1 = [u for u in USERS if r.user(u)["backend"] == b1]
        check(on_b1, "some users on %s" % b1)
        riglib.wait_for(lambda: health(r, b1)["checked"] is not None and
                        health(r, b2)["checked"] is not None, 10)
        eq((health(r, b1)["state"], health(r, b2)["state"]), ("ok", "ok"),
           "both backends pass their probes")

        # b1's Dovecot dies.
        t0 = time.monotonic()
        rig.restart(b1, kill=True, start=False)
        # Clients retry every 0.2 s, each attempt on its own connection
        # (a login that tries the dead backend takes a while on its own).
        user = on_b1[0]
        results, threads = [], []
        detected = None

        def attempt():
            st = riglib.imap_login_from(rig, "p1", user,
                                        source=riglib.fresh_source(),
                                        timeout=10)
            results.append((time.monotonic() - t0, st[0]))

        while time.monotonic() - t0 < 20 and not any(
                ok == "OK" for _, ok in results):
            if detected is None and health(r, b1)["state"] == "failed":
                detected = time.monotonic() - t0
            th = threading.Thread(target=attempt, daemon=True)
            th.start()
            threads.append(th)
            time.sleep(0.2)
        for th in threads:
            th.join(15)
        oks = [at for at, ok in results if ok == "OK"]
        check(oks, "%s never logged in after %s died" % (user, b1))
        took = min(oks)
        print("failover time: %.2f s (kill of %s to the first login of %s; "
              "marked failed after %s s)" % (took, b1, user, detected and
                                             "%.2f" % detected))
        h = health(r, b1)
        eq(h["state"], "failed", "%s marked failed" % b1)
        check(h["error"] != "", "the reason is kept: %r" % h["error"])
        eq(r.user(user)["backend"], b2, "%s now assigned to %s" % (user, b2))
        # Every affected user logs in, and mail lands on b2.
        for u in on_b1:
            eq(riglib.imap_login_from(rig, "p1", u,
                                      source=riglib.fresh_source())[0],
               "OK", "%s logs in during the outage" % u)
        mid, msg = riglib.unique_message(subject="during", to=user)
        eq(riglib.imap_append(rig, "p1", user, msg)[0], "OK", "APPEND")
        eq(riglib.messages_with_id(rig, b2, user, mid), 1,
           "the message is on %s" % b2)

        # b1 comes back: ok again after probe_rise rounds; users stay.
        rig.restart(b1)
        riglib.wait_for(lambda: health(r, b1)["state"] == "ok", 15)
        eq(health(r, b1)["state"], "ok", "%s ok again" % b1)
        for u in on_b1:
            eq(riglib.imap_login_from(rig, "p1", u,
                                      source=riglib.fresh_source())[0],
               "OK", "%s logs in after the recovery" % u)
            eq(r.user(u)["backend"], b2, "%s stays on %s" % (u, b2))
        log = r.log()
        check("health ok -> failing" in log or "health ok -> failed" in log,
              "the change is logged")


rt.run(main)
