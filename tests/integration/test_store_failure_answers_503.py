"""A new user's assignment that cannot be written to the store is never
handed out: while another process holds the SQLite write lock, a lookup for a
new user gets 503 "store" and leaves no assignment behind, known users are
still answered, and once the lock is gone the user is placed and stored."""

import sqlite3
import time

import roosttest as rt
from roosttest import check, eq, status


def main(t):
    r = t.roost()
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    known = r.lookup_ok("known@example.com")

    # Another writer takes the database's write lock and keeps it.
    db = sqlite3.connect(r.db_path, timeout=1, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        st, js = r.lookup("fresh@example.com")
        took = time.monotonic() - t0
        eq(st, 503, "new user while the store is locked: %r" % js)
        eq(js.get("reason"), "store", "the reason names the store")
        print("503 after %.1fs (roostd's bounded retry)" % took)
        eq(r.user("fresh@example.com")["assigned"], False,
           "the refused assignment is not kept in memory")
        eq(r.lookup_ok("known@example.com"), known,
           "a known user is still answered from memory")
    finally:
        db.execute("ROLLBACK")
        db.close()

    js = r.lookup_ok("fresh@example.com")
    u = r.user("fresh@example.com")
    eq((u["assigned"], u["backend"]), (True, js["backend"]),
       "placed once the store takes writes again")
    rc = r.kill()
    check(rc != 0, "kill -9")
    r.start()
    eq(r.lookup_ok("fresh@example.com"), js, "and it was stored")
    eq(r.lookup_ok("known@example.com"), known, "known user unchanged")


rt.run(main)
