"""Two controllers placing the same new user answer the same backend, the
one the store holds, and no answer names a backend the store does not hold.

roostd runs on a tests/pg/pgtmp PostgreSQL with backends b1 and b2 up and
b3 draining (so its hash never picks b3).  psql plays the other controller.
Its writes are tagged with roostd's own change origin, so roostd's change
feed skips them: the window between another controller's commit and the
feed delivering it, held open.

- Rows for 20 users roostd never saw, on b3 (some with replica b1, some
  pinned): looked up at once among 20 fresh users, each answers b3 and its
  replica, GET /v1/users agrees, the rows are untouched, the fresh users
  are placed by the hash.
- A user roostd placed and the other moved to b3: when its backend here
  goes down, the lookup that places it again answers b3 and leaves the row.
- A pin over a row memory does not know (moved, or never seen) is 409
  naming b3 and changes nothing.
- A user on b9, a backend the other added: 503 "unknown_backend" naming b9,
  lookup after lookup, the row stays; after a restart roostd answers b9.
- A true race, not masked: the other inserts 10 users on b3 in a
  transaction it keeps open while roostd looks them up; roostd's write
  waits (retrying), and once the other commits every lookup answers b3.
"""

import json
import subprocess
import threading
import time

import roosttest as rt
from roosttest import Conn, check, eq, q

USER_COLS = ("\"user\", backend, tag, pinned, since, last_lookup, confirmed,"
             " replica, replica_current, failed_over")


def lookups(r, names):
    """Every name looked up at once (one connection each), so that they
    share a batch: {name: (status, body)}."""
    out = {}
    auth = {"Authorization": "Bearer " + r.admin_token}

    def one(u):
        c = Conn(r.port)
        try:
            st, _, body = c.request("GET", "/v1/lookup?user=%s&protocol=imap"
                                    % q(u), headers=auth)
        finally:
            c.close()
        out[u] = (st, json.loads(body))

    threads = [threading.Thread(target=one, args=(u,)) for u in names]
    for t in threads:
        t.start()
    return threads, out


def lookups_done(names, threads, out):
    for t in threads:
        t.join(60)
    check(len(out) == len(names), "every lookup answered")
    return out


def stored(pg, users):
    rows = pg.query("SELECT \"user\", backend, coalesce(replica, '-'),"
                    " pinned FROM users WHERE \"user\" IN (%s)" %
                    ", ".join("'%s'" % u for u in users))
    return {u: (b, rep, pin) for u, b, rep, pin in rows}


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    r = t.roost(store="postgresql:" + pg.conninfo)
    for i, n in enumerate(("b1", "b2", "b3")):
        r.add_backend(n, "127.0.0.%d" % (11 + i),
                      ports={"imap": 10001 + i})
    r.patch_backend("b3", state="drain")
    origin = pg.query("SELECT origin FROM changes WHERE origin <> ''"
                      " ORDER BY seq DESC LIMIT 1")
    check(origin, "roostd's backends are in the change feed")

    def other(sql):
        """The other controller's write, unseen by roostd's feed."""
        return pg.query("SET roost.origin = '%s'; %s" % (origin[0][0], sql))

    # New users the other placed first.
    theirs = ["theirs%02d@example.org" % i for i in range(20)]
    other("INSERT INTO users (%s) VALUES %s" % (USER_COLS, ", ".join(
        "('%s', 'b3', '', %d, 1764000000, 0, 0, %s, 0, 0)" %
        (u, 1 if i % 5 == 0 else 0, "'b1'" if i % 3 == 0 else "NULL")
        for i, u in enumerate(theirs))))
    ours = ["ours%02d@example.org" % i for i in range(20)]
    got = lookups_done(theirs + ours, *lookups(r, theirs + ours))
    for i, u in enumerate(theirs):
        st, js = got[u]
        eq(st, 200, "lookup %s: %r" % (u, js))
        eq(js["backend"], "b3", "%s answers the stored backend" % u)
        eq(js["replica"], "b1" if i % 3 == 0 else None,
           "%s answers the stored replica" % u)
        ju = r.user(u)
        eq((ju["backend"], ju["pinned"]), ("b3", i % 5 == 0),
           "GET /v1/users/%s agrees" % u)
    for u in ours:
        st, js = got[u]
        eq(st, 200, "lookup %s: %r" % (u, js))
        check(js["backend"] in ("b1", "b2"), "%s placed by the hash: %r" %
              (u, js))
    rows = stored(pg, theirs + ours)
    for i, u in enumerate(theirs):
        eq(rows[u], ("b3", "b1" if i % 3 == 0 else "-",
                     "1" if i % 5 == 0 else "0"),
           "the store's row of %s untouched" % u)
    for u in ours:
        eq(rows[u][0], got[u][1]["backend"], "%s stored as answered" % u)
    for u in theirs[:5]:
        eq(r.lookup_ok(u)["backend"], "b3", "%s again, from memory" % u)
    check("placed by another instance" in r.log(), "adoptions are logged")

    # Placed again only over the row memory had.
    mover = ours[0]
    was = got[mover][1]["backend"]
    other("UPDATE users SET backend = 'b3' WHERE \"user\" = '%s'" % mover)
    r.patch_backend(was, state="down")
    eq(r.lookup_ok(mover)["backend"], "b3", "re-placed %s answers where "
       "the other controller moved it" % mover)
    eq(stored(pg, [mover])[mover][0], "b3", "and the store still says b3")
    eq(r.user(mover)["backend"], "b3", "GET /v1/users/%s agrees" % mover)
    r.patch_backend(was, state="up")

    # A pin writes only over the row memory knows.
    moved = ours[1]
    here = got[moved][1]["backend"]
    other("UPDATE users SET backend = 'b3' WHERE \"user\" = '%s'" % moved)
    other("INSERT INTO users (\"user\", backend, since) VALUES"
          " ('unseen@example.org', 'b3', 1764000000)")
    for u, to in ((moved, here), ("unseen@example.org", "b1")):
        st, js = r.api("PUT", "/v1/users/" + q(u), {"backend": to})
        eq((st, js.get("field")), (409, "user"), "pin of %s: %r" % (u, js))
        check("b3" in js["error"], "the 409 names b3: %r" % js)
    rows = stored(pg, [moved, "unseen@example.org"])
    eq((rows[moved][0], rows[moved][2]), ("b3", "0"), "%s untouched" % moved)
    eq(rows["unseen@example.org"][0], "b3", "unseen@example.org untouched")

    # A backend the other added, and a user placed on it.
    other("INSERT INTO backends (name, host, weight, state, port_imap,"
          " created, updated) VALUES ('b9', '127.0.0.19', 100, 'up',"
          " 10009, 1764000000, 1764000000)")
    other("INSERT INTO users (\"user\", backend, since) VALUES"
          " ('stranger@example.org', 'b9', 1764000000)")
    for attempt in range(3):
        st, js = r.lookup("stranger@example.org")
        eq(st, 503, "lookup on an unknown backend, attempt %d: %r" %
           (attempt, js))
        eq(js.get("reason"), "unknown_backend", "the reason: %r" % js)
        check("b9" in js["error"], "the answer names b9: %r" % js)
    eq(stored(pg, ["stranger@example.org"])["stranger@example.org"][0], "b9",
       "the store still has the stranger on b9")
    js = r.user("stranger@example.org")
    eq((js["assigned"], js["backend"]), (False, None),
       "memory holds no guess for the stranger")

    # The true race: the other's insert still open while roostd looks up.
    racers = ["racer%02d@example.org" % i for i in range(10)]
    psql = subprocess.Popen([pg.psql, "-X", "-q", "-tA", "-v",
                             "ON_ERROR_STOP=1", "-d", pg.conninfo],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        psql.stdin.write("BEGIN;\nINSERT INTO users (\"user\", backend,"
                         " since) VALUES %s;\nSELECT 'inserted';\n" %
                         ", ".join("('%s', 'b3', 1764000000)" % u
                                   for u in racers))
        psql.stdin.flush()
        eq(psql.stdout.readline().strip(), "inserted", "psql's open insert")
        threads, out = lookups(r, racers)
        time.sleep(0.3)
        eq(len(out), 0, "the lookups wait while the other's insert is "
           "open: %r" % out)
        psql.stdin.write("COMMIT;\n")
        psql.stdin.close()
        eq(psql.wait(30), 0, "psql's commit")
    finally:
        if psql.poll() is None:
            psql.kill()
    out = lookups_done(racers, threads, out)
    for u in racers:
        eq(out[u][0], 200, "racing lookup %s: %r" % (u, out[u][1]))
        eq(out[u][1]["backend"], "b3", "racing lookup %s answers the "
           "other's backend" % u)
    eq({row[0] for row in stored(pg, racers).values()}, {"b3"},
       "the racers' rows are the other's")

    # Restarted, roostd loads b9 and answers it.
    r.restart()
    eq(r.lookup_ok("stranger@example.org")["backend"], "b9",
       "after a restart the stranger is answered on b9")
    eq(r.lookup_ok(theirs[1])["backend"], "b3", "and the adopted users "
       "as before")


if __name__ == "__main__":
    rt.run(main)
