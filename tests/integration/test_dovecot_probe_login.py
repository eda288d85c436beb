"""On real Dovecot, a backend with a probe account is probed with an IMAP
LOGIN as that user: with the right password it stays ok (its log shows the
test login); with a wrong one it becomes failed, saying the test login was
refused, and its users log in on the other backend at their next login."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 28600
PROBE_USER = "u1"
USERS = ["u%d" % i for i in range(1, 11)]
WRONG_PW = "Wrong-probe-pw-3d9e"


def health(r, name):
    return r.backend(name)["health"]


def main(t):
    # Dovecot answers a wrong password only after auth_failure_delay (2 s):
    # the probe timeout leaves room for that.
    r = t.roost(probe_interval="1s", probe_timeout="5s", probe_fall="2",
                probe_rise="2")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        b1, b2 = rig.backends[:2]
        riglib.wait_for(lambda: health(r, b1)["checked"] is not None and
                        health(r, b2)["checked"] is not None, 10)
        eq((health(r, b1)["state"], health(r, b2)["state"]), ("ok", "ok"),
           "both backends pass their greeting probes")
        check(b1 not in rig.backends_that_saw_login(PROBE_USER),
              "no login of %s on %s before it is the probe account" %
              (PROBE_USER, b1))

        # The rig's password: the test login succeeds, b1 stays ok.
        r.patch_backend(b1, probe={"user": PROBE_USER,
                                   "password": rig.info["password"]})
        check(riglib.wait_for(lambda: b1 in rig.backends_that_saw_login(
              PROBE_USER), 10), "the probe logged in as %s on %s" %
              (PROBE_USER, b1))
        check(b2 not in rig.backends_that_saw_login(PROBE_USER),
              "no test login on %s, which has no probe account" % b2)
        eq(health(r, b1)["state"], "ok", "%s ok with its test login" % b1)

        # Users on each backend, placed by their first login.
        for u in USERS[1:]:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK",
               "%s logs in" % u)
        on_b1 = [u for u in USERS[1:] if r.user(u)["backend"] == b1]
        check(on_b1, "some users on %s" % b1)

        # A wrong password: the test login is refused, b1 fails.
        r.patch_backend(b1, probe={"password": WRONG_PW})
        check(riglib.wait_for(lambda: health(r, b1)["state"] == "failed",
                              20), "%s failed: %r" % (b1, health(r, b1)))
        h = health(r, b1)
        # The first refusal is logged as such; later rounds may time out
        # instead (Dovecot's auth penalty delays roostd's next logins).
        check('health ok -> failing (imap: test login refused: "R1 NO '
              '[AUTHENTICATIONFAILED]' in r.log(), "the log says the imap "
              "test login was refused:\n%s" % r.log_tail(5))
        check(h["error"].startswith("imap:"), "the error names imap: %r" %
              h["error"])
        check(WRONG_PW not in h["error"], "no password in the error")
        eq(h["routed"], False, "%s not handed out" % b1)
        eq(health(r, b2)["state"], "ok", "%s stays ok" % b2)

        # Its users are placed on b2 at their next login, and get in.
        for u in on_b1:
            eq(riglib.imap_login_from(rig, "p1", u,
                                      source=riglib.fresh_source())[0],
               "OK", "%s logs in while %s is failed" % (u, b1))
            eq(r.user(u)["backend"], b2, "%s now on %s" % (u, b2))
        check(riglib.wait_for(lambda: set(on_b1) <= set(
              u for u in on_b1 if b2 in rig.backends_that_saw_login(u)), 5),
              "%s's users logged in on %s" % (b1, b2))

        # The right password again: ok after probe_rise rounds.
        r.patch_backend(b1, probe={"password": rig.info["password"]})
        check(riglib.wait_for(lambda: health(r, b1)["state"] == "ok", 20),
              "%s ok again: %r" % (b1, health(r, b1)))
        check("health ok -> failing" in r.log() or
              "health ok -> failed" in r.log(), "the change is logged")
        r.secrets_absent(WRONG_PW)


rt.run(main)
