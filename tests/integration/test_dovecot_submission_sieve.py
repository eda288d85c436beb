"""Submission and ManageSieve through a real Dovecot proxy: a submitted
message is relayed (it reaches the rig's SMTP sink) and a script put with
PUTSCRIPT is stored on the user's assigned backend and listed back."""
import base64
import os
import smtplib
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 26200
USERS = ["u%d" % i for i in range(1, 7)]


def installed(rig, program):
    """Dovecot's helper program is there (the Debian package is
    installed) for the rig's version."""
    root = rig.info["chroot"] or "/"
    return os.path.exists(os.path.join(root, "usr/lib/dovecot", program))


class Sieve:
    def __init__(self, addr, port):
        self.sock = socket.create_connection((addr, port), timeout=15)
        self.f = self.sock.makefile("rwb")
        self.read_until_status()

    def read_until_status(self):
        """Lines up to the OK/NO/BYE status line: (status line, others)."""
        lines = []
        for _ in range(10000):
            line = self.f.readline()
            if not line:
                return "BYE (closed)", lines
            s = line.decode(errors="replace").rstrip("\r\n")
            if s.split(" ")[0] in ("OK", "NO", "BYE"):
                return s, lines
            lines.append(s)
        raise AssertionError("managesieve: no status line")

    def cmd(self, raw):
        self.f.write(raw)
        self.f.flush()
        return self.read_until_status()

    def close(self):
        self.sock.close()


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        p1 = rig.inst("p1")
        pw = rig.info["password"]
        for prog in ("submission", "managesieve"):
            if not installed(rig, prog):
                raise rt.Skip("Dovecot %s has no %s here (package missing)"
                              % (rig.info["version"], prog))
        placed = {}

        # Submission: relayed to the sink, logged in on the assigned
        # backend (the backend does the relaying).
        for u in USERS[:3]:
            mid, msg = riglib.unique_message(subject="sub " + u,
                                             sender=u + "@example.com",
                                             to="x@example.com")
            m = smtplib.SMTP(p1["address"], p1["ports"]["submission"],
                             timeout=15)
            try:
                m.ehlo("roosttest")
                m.login(u, pw)
                eq(m.sendmail(u + "@example.com", ["x@example.com"], msg),
                   {}, "%s: submission refused a recipient" % u)
            finally:
                m.quit()
            got = riglib.wait_for(lambda: [x for x in rig.sink_messages()
                                           if mid.encode() in x], 10)
            eq(len(got), 1, "%s: the submitted message reached the sink "
               "once" % u)
            placed[u] = r.user(u)["backend"]

        # ManageSieve: PUTSCRIPT lands in the assigned backend's home.
        for u in USERS[3:]:
            name = "roost-" + u
            script = b'require "fileinto";\r\nkeep;\r\n'
            s = Sieve(p1["address"], p1["ports"]["sieve"])
            try:
                cred = base64.b64encode(b"\0%s\0%s" % (u.encode(),
                                                      pw.encode()))
                st, _ = s.cmd(b'AUTHENTICATE "PLAIN" "%s"\r\n' % cred)
                check(st.startswith("OK"), "%s: managesieve login "
                      "through p1: %s" % (u, st))
                st, _ = s.cmd(b'PUTSCRIPT "%s" {%d+}\r\n%s\r\n'
                              % (name.encode(), len(script), script))
                check(st.startswith("OK"), "%s: PUTSCRIPT: %s" % (u, st))
                st, lines = s.cmd(b"LISTSCRIPTS\r\n")
                check(st.startswith("OK") and
                      any(ln.startswith('"%s"' % name) for ln in lines),
                      "%s: LISTSCRIPTS shows %s: %r %s"
                      % (u, name, lines, st))
                s.cmd(b"LOGOUT\r\n")
            finally:
                s.close()
            b = r.user(u)["backend"]
            placed[u] = b
            for x in rig.backends:
                found = riglib.files_named(riglib.home_of(rig, x, u),
                                           name + ".sieve")
                eq(len(found), 1 if x == b else 0,
                   "%s: %s.sieve files on %s (assigned %s): %r"
                   % (u, name, x, b, found))

        seen = riglib.logins_by_backend(rig)
        for u, b in placed.items():
            eq(sorted(seen.get(u, {})), [b], "%s logged in on" % u)


rt.run(main)
