"""`roostctl user move U B` ends U's open sessions before U is handed to B:
an IMAP IDLE session through the proxy gets BYE and is closed, the old
backend's `who` shows no session of U, the next login (and its mail) lands
on B, and the move is listed as done.  Users left alone stay where they
were."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27700
USERS = ["u1", "u2", "u3", "u4", "u5", "u6"]


def who(rig, backend, user):
    res = rig.doveadm_http(backend, "who", {"mask": [user]})
    eq(res[0][0], "doveadmResponse", "who on %s: %r" % (backend, res))
    return res[0][1]


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        p1 = rig.inst("p1")
        st, js = r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
            "url": p1["doveadm_url"], "api_key": p1["doveadm_api_key"]}})
        eq(st, 201, "register the proxy: %r" % js)
        for u in USERS:
            eq(riglib.imap_login_from(rig, "p1", u)[0], "OK", "%s login" % u)
        before = {u: r.user(u)["backend"] for u in USERS}
        user = USERS[0]
        old = before[user]
        new = [b for b in rig.backends if b != old][0]

        # An IDLE session through the proxy.
        c = riglib.Imap(rig, "p1", timeout=20)
        eq(c.login(user)[0], "OK", "IDLE session logs in")
        eq(c.cmd("SELECT INBOX")[0], "OK", "SELECT")
        c.f.write(b"i1 IDLE\r\n")
        c.f.flush()
        check(c.f.readline().startswith(b"+"), "IDLE started")
        check(len(who(rig, old, user)) >= 1, "the session is on %s" % old)

        t0 = time.monotonic()
        rc, out, err = r.ctl("user", "move", user, new)
        took = time.monotonic() - t0
        eq(rc, 0, "roostctl user move (%s%s)" % (out, err))
        check("moved to %s" % new in out, "roostctl says so: %r" % out)
        print("move with an IDLE session: %.2f s" % took)
        rest = c.rest()
        c.close()
        check(b"BYE" in rest, "the IDLE session got BYE: %r" % rest)
        eq(who(rig, old, user), [], "no session of %s left on %s" %
           (user, old))

        mid, msg = riglib.unique_message(subject="after move", to=user)
        eq(riglib.imap_append(rig, "p1", user, msg)[0], "OK", "APPEND")
        eq(riglib.where_is_message(rig, user, mid), {old: 0, new: 1},
           "mail after the move lands on %s" % new)
        js = r.user(user)
        eq((js["backend"], js["pinned"]), (new, True), "stored: %r" % js)
        st, js = r.api("GET", "/v1/moves?limit=5")
        eq(js["moves"][0]["state"], "done", "the move is listed as done")
        eq({u: r.user(u)["backend"] for u in USERS[1:]},
           {u: before[u] for u in USERS[1:]}, "the others stayed")
        rc, out, err = r.ctl("moves", "--all")
        check(user in out and "done" in out, "roostctl moves:\n" + out)


rt.run(main)
