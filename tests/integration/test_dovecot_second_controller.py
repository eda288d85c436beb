"""A real Dovecot proxy whose first controller URLs are a closed port and a
stopped roostd still logs users in through the next, running roostd, with a
lookup token; with a wrong token on the proxy logins fail temporarily
(NO [UNAVAILABLE]) and reach no backend, and work again once the right token
is back."""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26500
USERS = ["u%d" % i for i in range(1, 11)]


def main(t):
    stopped = t.roost(lookup_token=True)
    eq(stopped.kill(signal.SIGTERM), 0, "first roostd stopped")
    r = t.roost(lookup_token=True)
    dead = "http://127.0.0.1:%d" % rt.free_port()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS),
                           roost_urls=[dead, stopped.url, r.url],
                           lookup_token_file=r.lookup_token_file) as rig:
        # the running roostd really wants the token
        eq(r.lookup("u1", token=None)[0], 401, "lookup without a token")

        placed = {}
        for u in USERS[:6]:
            st, line = rig.imap_login("p1", u)
            eq(st, "OK", "%s: login through the third URL (%s)" % (u, line))
            placed[u] = r.user(u)["backend"]
        eq(set(placed.values()), set(rig.backends),
           "users spread over both backends: %r" % placed)
        seen = riglib.logins_by_backend(rig)
        for u, b in placed.items():
            eq(seen.get(u), {b: 1}, "%s: logged in once, on %s" % (u, b))

        # roostd's lookup token rotated (SIGHUP), the proxy still has the
        # old one: a temporary failure, never a login.
        tok = rig.inst("p1")["lookup_token_file"]
        old = r.lookup_token
        new = "lkp-rotated-" + os.urandom(8).hex()
        r._write_secret(r.lookup_token_file, new, 0o600)
        r.lookup_token = new
        r.kill(signal.SIGHUP)
        check(riglib.wait_for(lambda: r.lookup("u1", token=old)[0] in (401, 403),
                              10), "roostd refuses the old lookup token "
              "after SIGHUP")
        eq(r.lookup("u1", token=new)[0], 200, "roostd takes the new token")
        for u in (USERS[0], USERS[6]):
            st, line = riglib.imap_login_from(rig, "p1", u,
                                              source=riglib.fresh_source())
            check(st == "NO" and "[UNAVAILABLE]" in line,
                  "%s: login with a wrong lookup token: %r" % (u, line))
        eq(riglib.logins_by_backend(rig), seen,
           "no backend saw a login with the wrong token")
        eq(r.user(USERS[6])["assigned"], False,
           "%s not placed by a refused lookup" % USERS[6])

        # The new token given to the proxy: it rereads the file after a
        # refusal and logs in, without a reload.
        with open(tok, "w") as f:		# keeps owner and mode
            f.write(new + "\n")
        for u in (USERS[0], USERS[6]):
            st, line = riglib.imap_login_from(rig, "p1", u,
                                              source=riglib.fresh_source(),
                                              timeout=40)
            eq(st, "OK", "%s: login with the new token (%s)" % (u, line))
        b = r.user(USERS[6])["backend"]
        eq(riglib.logins_by_backend(rig).get(USERS[6]), {b: 1},
           "%s logged in on %s" % (USERS[6], b))
        r.secrets_absent(old, new)
        with open(rig.inst("p1")["log"], errors="replace") as f:
            plog = f.read()
        check(old not in plog and new not in plog,
              "a lookup token appears in the proxy's log")


rt.run(main)
