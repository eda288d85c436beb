"""The change feed reads what other writers changed without holding
roostd's loop.  Another session holds an ACCESS EXCLUSIVE lock on `users`
for a few seconds while psql stores a finished move of a known user: the
feed reads that change, then waits for the lock to read the user's row.
Meanwhile roostd answers: its status shows the read under way for 0.3 s
and more (an answer that a loop waiting for the read could not give), and
every known user is answered with their backend.  After the lock, the move
is applied and a pin made through psql reaches memory.  Then psql adds
5,000 users in one commit: roostd applies them all (several passes of
FEED_BATCH changes) and answers the stored backend for each one sampled;
the slowest known-user lookup sent while it catches up is printed (a
figure, not asserted)."""

import subprocess
import threading
import time

import roosttest as rt
from roosttest import check, eq, status

LOCK_S = 2.5
BURST = 5000


def main(t):
    rt.on_pg(t, scenario)


def feed(r):
    return status(r.api("GET", "/v1/status"), 200, "status")["feed"]


def user_backend(r, name):
    st, js = r.api("GET", "/v1/users/" + rt.q(name))
    return js.get("backend") if st == 200 and js.get("assigned") else None


def scenario(t, pg, made):
    r = t.roost(store="postgresql:" + pg.conninfo)
    rt.wait_for("the feed listens", lambda: feed(r)["connected"])
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    known = ["known%02d" % i for i in range(20)]
    where = {u: r.lookup_ok(u)["backend"] for u in known}
    other = {"b1": "b2", "b2": "b1"}
    target = "known00"

    # The lock, held by a session of its own until LOCK_S has passed.
    locker = subprocess.Popen(
        [pg.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.conninfo,
         "-c", "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;"
         " SELECT pg_sleep(%s); COMMIT" % LOCK_S],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        rt.wait_for("the lock is held", lambda: pg.query(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON"
            " c.oid = l.relation WHERE c.relname = 'users' AND"
            " l.mode = 'AccessExclusiveLock' AND l.granted")[0][0] == "1",
            seconds=10)
        applied = feed(r)["applied"]
        # A move that is over: its change names the user, whose row the
        # feed then reads (and the lock holds up).
        pg.query("INSERT INTO moves (\"user\", from_backend, to_backend,"
                 " reason, state, created, updated) VALUES ('known01',"
                 " '%s', '%s', 'move', 'done', 1, 1)" %
                 (where["known01"], other[where["known01"]]))
        out = {}
        seen = []
        others = [u for u in known if u != target]
        looker = threading.Thread(
            target=rt.lookups_until,
            args=(r, others, where, lambda: locker.poll() is not None, out))
        looker.start()
        while locker.poll() is None:
            seen.append(feed(r).get("reading_ms", -1))
            time.sleep(0.05)
        looker.join(30)
        eq(locker.returncode, 0, "the locking session: %s" %
           locker.stderr.read().decode()[-500:])
    finally:
        if locker.poll() is None:
            locker.kill()
        locker.wait()
    print("while the lock was held: %d status answers, the longest read "
          "under way %d ms; %d lookups, slowest %.1f ms" %
          (len(seen), max(seen), out["n"], out["slowest"] * 1000))
    check(max(seen) >= 300, "roostd answered while its feed read waited "
          "(reading_ms seen: %r)" % seen[-10:])
    eq(out["wrong"], [], "known users answered during the lock")
    check(out["n"] > 0, "lookups made during the lock")
    rt.wait_for("the move's change applied after the lock",
                lambda: feed(r)["applied"] > applied)
    pg.query("UPDATE users SET backend = '%s', pinned = 1 WHERE"
             " \"user\" = '%s'" % (other[where[target]], target))
    rt.wait_for("a pin reaches memory",
                lambda: user_backend(r, target) == other[where[target]])
    eq(r.lookup_ok(target)["backend"], other[where[target]],
       "the pinned user's lookup")
    eq(r.lookup_ok("known01")["backend"], where["known01"],
       "the user of the finished move stays where the store has them")

    # A burst: BURST users in one commit, read FEED_BATCH at a time.
    before = feed(r)["applied"]
    done = {}
    catchup = threading.Thread(
        target=rt.lookups_until,
        args=(r, others, where, lambda: done.get("yes"), out))
    catchup.start()
    try:
        pg.query("INSERT INTO users (\"user\", backend, since) SELECT"
                 " 'burst' || i, CASE WHEN i %% 2 = 0 THEN 'b1' ELSE 'b2'"
                 " END, 1 FROM generate_series(1, %d) i" % BURST)
        rt.wait_for("the burst applied", lambda: feed(r)["applied"] >=
                    before + BURST, seconds=30)
    finally:
        done["yes"] = True
        catchup.join(30)
    print("%d new users applied; %d lookups meanwhile, slowest %.1f ms" %
          (BURST, out["n"], out["slowest"] * 1000))
    eq(out["wrong"], [], "known users answered during the catch-up")
    for i in (1, 2, 999, 1000, 1001, 2500, BURST):
        eq(r.lookup_ok("burst%d" % i)["backend"],
           "b1" if i % 2 == 0 else "b2", "burst user %d" % i)


rt.run(main)
