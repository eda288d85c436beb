"""roostd on a PostgreSQL primary with a synchronous streaming standby,
given one libpq connection string that lists both with
target_session_attrs=read-write (as a site with a standby would): the
primary crashes and the standby is promoted; roostd goes on by itself on
the new primary.  Known users are answered throughout, new users get 503
only until the promotion, and afterwards every assignment and pin made
before the crash is there (synchronous replication: nothing acknowledged
is lost), new users and admin changes are stored again, and a restarted
roostd finds all of it.  The password is in no log and no answer."""

import time

import roosttest as rt
from roosttest import Pg, check, eq, q, status, wait_for, pg_multi_host
from fakedoveadm import add_fake_backends

KEY = "fake-doveadm-key-standby-4410"


def main(t, hang=False):
    """hang: the primary stops answering (SIGSTOP) instead of crashing."""
    primary = Pg()
    standby = None
    fakes = {}
    try:
        standby = Pg(standby_of=primary)
        scenario(t, primary, standby, fakes, hang)
    finally:
        for r in t.roosts:
            r.stop()
        for f in fakes.values():
            f.close()
        if standby is not None:
            standby.stop()
        if hang:
            primary.thaw()
        primary.stop()


def scenario(t, primary, standby, fakes, hang):
    # Commits wait for the standby: what roostd acknowledged survives.
    primary.query("ALTER SYSTEM SET synchronous_standby_names = '*'")
    primary.query("SELECT pg_reload_conf()")
    wait_for("the standby streams synchronously", lambda: primary.query(
        "SELECT sync_state FROM pg_stat_replication") == [["sync"]])
    eq(standby.query("SELECT pg_is_in_recovery()"), [["t"]],
       "the standby is a standby")

    r = t.roost(store="postgresql:" + pg_multi_host(primary, standby))
    add_fake_backends(r, fakes, KEY)
    users = ["ha%03d" % i for i in range(100)]
    where = {}
    for u in users:
        st, js = r.lookup(u)
        eq(st, 200, "lookup %s" % u)
        where[u] = js["backend"]
    pinned = users[7]
    other = "b2" if where[pinned] == "b1" else "b1"
    status(r.api("PUT", "/v1/users/" + q(pinned), {"backend": other}), 200,
           "pin")
    where[pinned] = other
    eq(len(standby.query("SELECT 1 FROM users")), len(users),
       "every assignment is on the standby before the crash")

    if hang:
        primary.freeze()
    else:
        primary.halt()
    t0 = time.monotonic()
    # Before the promotion: no server takes writes.
    for u in users[:20]:
        st, js = r.lookup(u)
        eq((st, js["backend"]), (200, where[u]), "%s with no primary" % u)
    st, js = r.lookup("while-no-primary")
    eq((st, js.get("reason")), (503, "store"), "a new user with no primary")
    standby.promote()

    def placed():
        st, js = r.lookup("after-promotion")
        return js["backend"] if st == 200 else None
    fresh = wait_for("a new user placed on the promoted standby", placed, 30)
    print("writes again %.1f s after the crash" % (time.monotonic() - t0))
    for u in users:
        st, js = r.lookup(u)
        eq((st, js["backend"]), (200, where[u]), "%s after the promotion" % u)
    status(r.api("PUT", "/v1/users/" + q(users[8]), {"backend": "b1"}), 200,
           "a pin after the promotion")
    where[users[8]] = "b1"
    rows = dict(standby.query('SELECT "user", backend FROM users'))
    wrong = [u for u in users if rows.get(u) != where[u]]
    check(not wrong, "the new primary holds every assignment: %r" %
          wrong[:5])
    eq(rows.get("after-promotion"), fresh, "the new user is stored")

    r.stop()
    r.start()
    for u in users + ["after-promotion"]:
        st, js = r.lookup(u)
        eq((st, js["backend"]), (200, where.get(u, fresh)),
           "%s after a restart" % u)
    eq((r.user(pinned)["pinned"], r.user(users[8])["pinned"]), (True, True),
       "both pins")
    r.secrets_absent(primary.password, KEY)


if __name__ == "__main__":
    rt.run(main)
