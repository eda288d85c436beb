"""A master user logs in through the proxy as `alice*admin` with the master
password and lands on alice's assigned backend, in alice's mailbox: the
message alice stored there is visible; a wrong master password is refused."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27300
USERS = ["alice", "bob"]


def master_lines(rig, backend):
    with open(rig.inst(backend)["log"], errors="replace") as f:
        return [ln for ln in f if "Master user logging in as alice" in ln]


def main(t):
    r = t.roost(master_user_separator="*")
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS)) as rig:
        sep = rig.info["master_user_separator"]
        master = "alice" + sep + rig.info["master_user"]
        mid, msg = riglib.unique_message(to="alice")
        st, line = riglib.imap_append(rig, "p1", "alice", msg)
        eq(st, "OK", "alice stores a message through the proxy (%s)" % line)
        home = r.user("alice")["backend"]
        other = [b for b in rig.backends if b != home][0]
        eq(riglib.where_is_message(rig, "alice", mid), {home: 1, other: 0},
           "alice's message is on her backend %s only" % home)

        c = riglib.Imap(rig, "p1")
        try:
            st = c.login(master, rig.info["master_password"])
            eq(st[0], "OK", "LOGIN %s through the proxy (%s)" % (master,
                                                                 st[1]))
            st = c.cmd("SELECT INBOX")
            eq(st[0], "OK", "SELECT INBOX as the master user (%s)" % st[1])
            st = c.cmd('SEARCH HEADER Message-ID "%s"' % mid)
            eq(st[0], "OK", "SEARCH (%s)" % st[1])
            hits = [u for u in st[2] if u.startswith("* SEARCH")]
            eq(hits, ["* SEARCH 1"], "alice's message seen by the master "
               "user")
            c.cmd("LOGOUT")
        finally:
            c.close()

        lines = riglib.wait_for(lambda: master_lines(rig, home), 5)
        check(len(lines) == 1, "%s logged the master login as alice: %r"
              % (home, lines))
        eq(master_lines(rig, other), [], "%s saw no master login" % other)
        eq(r.user("alice")["backend"], home, "alice stays on %s" % home)
        eq(sorted(u["user"] for u in r.all_users()), ["alice"],
           "the map holds alice, not the master login name")

        st, line = riglib.imap_login_from(rig, "p1", master, "wrong",
                                          source=riglib.fresh_source())
        eq(st, "NO", "a wrong master password is refused (%s)" % line)
        check("UNAVAILABLE" not in line, "refused as bad credentials, not "
              "as a temporary failure: %s" % line)


rt.run(main)
