"""LMTP delivery through a real Dovecot proxy lands in the INBOX of the
user's assigned backend only, and POP3 through the proxy reads it back."""
import os
import poplib
import smtplib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26100
USERS = ["u%d" % i for i in range(1, 9)]


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        p1 = rig.inst("p1")
        placed = {}
        for u in USERS:
            mid, msg = riglib.unique_message(subject="lmtp " + u, to=u)
            m = smtplib.LMTP(p1["address"], p1["ports"]["lmtp"], timeout=15)
            try:
                m.ehlo("roosttest")
                refused = m.sendmail("s@example.com", [u], msg)
                eq(refused, {}, "%s: LMTP RCPT refused" % u)
            finally:
                m.quit()
            b = r.user(u)["backend"]
            placed[u] = b
            want = {x: (1 if x == b else 0) for x in rig.backends}
            eq(riglib.where_is_message(rig, u, mid), want,
               "%s: delivered message per backend (assigned %s)" % (u, b))

            pop = poplib.POP3(p1["address"], p1["ports"]["pop3"], timeout=15)
            try:
                pop.user(u)
                check(pop.pass_(rig.info["password"]).startswith(b"+OK"),
                      "%s: POP3 login through p1" % u)
                count, _ = pop.stat()
                eq(count, 1, "%s: POP3 STAT message count" % u)
                _, lines, _ = pop.retr(1)
                body = b"\r\n".join(lines)
                check(mid.encode() in body and
                      (b"Subject: lmtp " + u.encode()) in body,
                      "%s: POP3 RETR 1 is the delivered message" % u)
            finally:
                pop.quit()
        eq(set(placed.values()), set(rig.backends),
           "the users are spread over both backends: %r" % placed)
        # POP3 logins were seen on the assigned backend only.
        seen = riglib.logins_by_backend(rig)
        for u, b in placed.items():
            eq(sorted(seen.get(u, {})), [b], "%s logged in on" % u)


rt.run(main)
