"""doveadm mail commands sent to a proxy's doveadm HTTP API are forwarded to
the backend roostd assigned the user: a mailbox created through the proxy
exists on that backend only, the proxy reads it back from there, and after
`roostctl user pin` the next command goes to the new backend."""
import os
import secrets
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27100
USERS = ["u%d" % i for i in range(1, 9)]


def ok_answer(ans, what):
    check(isinstance(ans, list) and len(ans) == 1 and
          ans[0][0] == "doveadmResponse", "%s: %r" % (what, ans))
    return ans[0][1]


def mailboxes_on(rig, backend, user):
    """Mailbox names of user on one backend, asked on the backend itself."""
    r = rig.doveadm(backend, "mailbox", "list", "-u", user)
    if r.returncode != 0:
        raise riglib.RigError("doveadm mailbox list on %s for %s: exit %d: %s"
                              % (backend, user, r.returncode, r.stderr))
    return set(r.stdout.split())


def create_through_proxy(rig, user):
    name = "roost-%s" % secrets.token_hex(4)
    ok_answer(rig.doveadm_http("p1", "mailboxCreate",
                               {"user": user, "mailbox": [name]}),
              "%s: mailboxCreate %s through p1" % (user, name))
    return name


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        made = {}
        for u in USERS[:6]:
            made[u] = create_through_proxy(rig, u)
        placed = {u: r.user(u)["backend"] for u in made}
        eq(set(placed.values()), set(rig.backends),
           "users spread over both backends: %r" % placed)
        for u, name in made.items():
            where = [b for b in rig.backends
                     if name in mailboxes_on(rig, b, u)]
            eq(where, [placed[u]], "%s: backends holding %s" % (u, name))
            listed = ok_answer(rig.doveadm_http("p1", "mailboxList",
                                                {"user": u}),
                               "%s: mailboxList through p1" % u)
            check(any(m.get("mailbox") == name for m in listed),
                  "%s: p1 lists %s from %s: %r" % (u, name, placed[u],
                                                   listed))

        # the proxy asks roostd for every command: a pin takes effect on
        # the next one, with no reload
        u = USERS[0]
        new = [b for b in rig.backends if b != placed[u]][0]
        rc, out, err = r.ctl("user", "pin", u, new)
        eq(rc, 0, "roostctl user pin %s %s (%s)" % (u, new, err.strip()))
        name = create_through_proxy(rig, u)
        eq([b for b in rig.backends if name in mailboxes_on(rig, b, u)],
           [new], "%s: backends holding %s after the pin" % (u, name))
        check(made[u] not in mailboxes_on(rig, new, u),
              "%s: the mailbox made before the pin stayed on %s"
              % (u, placed[u]))


rt.run(main)
