"""A proxy reaches backends over TLS when roostd says so: with tls=yes on the
backend's TLS-only imaps port, with tls=starttls on its plain port (the
backend logs the login as TLS), and the backend's certificate is verified
against the rig's CA (a name it was not issued for fails the login)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27200
USERS = ["u1", "u2", "u3"]


def login_lines(rig, backend, user):
    with open(rig.inst(backend)["log"], errors="replace") as f:
        return [ln for ln in f if riglib.LOGIN_RE.search(ln) and
                "user=<%s>" % user in ln]


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        b1, b2 = rig.backends
        tls_ports = rig.inst(b1)["ports"]
        # b1 only over TLS from the first byte: its imaps port speaks
        # nothing else, so a plain proxy connection could not log in.
        r.patch_backend(b1, tls="yes", ports={"imap": tls_ports["imaps"],
                                              "pop3": tls_ports["pop3s"]})
        r.patch_backend(b2, tls="starttls")

        # u1 on b1, u2 on b2 (a lookup while the other one is down).
        r.patch_backend(b2, state="down")
        eq(r.lookup_ok("u1")["tls"], "yes", "u1's answer asks for TLS")
        r.patch_backend(b2, state="up")
        r.patch_backend(b1, state="down")
        eq(r.lookup_ok("u2")["tls"], "starttls", "u2's answer: STARTTLS")
        r.patch_backend(b1, state="up")
        eq((r.user("u1")["backend"], r.user("u2")["backend"]), (b1, b2),
           "u1 on b1, u2 on b2")

        for u, b in (("u1", b1), ("u2", b2)):
            mid, msg = riglib.unique_message(to=u)
            st, line = riglib.imap_append(rig, "p1", u, msg)
            eq(st, "OK", "%s: LOGIN and APPEND through the proxy (%s)"
               % (u, line))
            eq(riglib.where_is_message(rig, u, mid), {b1: 0, b2: 0, b: 1},
               "%s: the message is on %s only" % (u, b))

        # The STARTTLS session is TLS on the backend, not plain text.
        lines = riglib.wait_for(lambda: login_lines(rig, b2, "u2"), 5)
        check(lines and all("TLS" in ln for ln in lines),
              "u2's logins on %s are over TLS: %r" % (b2, lines))
        lines = riglib.wait_for(lambda: login_lines(rig, b1, "u1"), 5)
        check(lines and all("TLS" in ln for ln in lines),
              "u1's logins on %s are over TLS: %r" % (b1, lines))

        # The certificate is checked: b1's names IP 127.0.0.11 only, so
        # a host name it was not issued for fails the login.
        inst = rig.inst(b1)
        r.patch_backend(b1, host="wrong-name.invalid",
                        hostip=inst["address"])
        st, line = riglib.imap_login_from(rig, "p1", "u1",
                                          source=riglib.fresh_source())
        check(st != "OK", "login to a backend whose certificate does not "
              "match is refused: %r" % ((st, line),))
        r.patch_backend(b1, host=inst["address"])
        st, line = riglib.imap_login_from(rig, "p1", "u1")
        eq(st, "OK", "with the right name the login works again (%s)" % line)


rt.run(main)
