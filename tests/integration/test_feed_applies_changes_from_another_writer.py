"""The change feed: roostd on PostgreSQL answers from memory, and what
another writer commits to the store reaches that memory without a restart.
"Another instance" here is psql on the same database, writing rows as a
roostd would: a new user, a user moved to another backend, a pin, a user
deleted, a backend added and set down, a health verdict, a proxy, a move
under way (the user's lookups wait: 503 "moving") and its end.  Each shows
in roostd's lookups and API within a bound (polled; speed is measured by
bench/feed_lag.py, not asserted here).  Changes roostd made itself are not
applied again.  The feed's connection killed (pg_terminate_backend):
roostd reconnects and catches up on what was written meanwhile.  History
pruned past what roostd read: it reloads everything, forgetting a user
deleted meanwhile."""

import time

import roosttest as rt
from roosttest import check, eq, status

BOUND = 10	# seconds: a failure bound, not a speed claim


def wait_for(what, fn, seconds=BOUND):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise rt.Failure("%s: not within %ds (last: %r)" % (what, seconds, last))


def feed(r):
    return status(r.api("GET", "/v1/status"), 200, "status")["feed"]


def user_on(r, name, backend):
    st, js = r.api("GET", "/v1/users/" + rt.q(name))
    return st == 200 and js.get("assigned") and js.get("backend") == backend


def lookup_backend(r, name):
    st, js = r.lookup(name)
    return js.get("backend") if st == 200 else st


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    r = t.roost(store="postgresql:" + pg.conninfo)
    wait_for("the feed listens", lambda: feed(r)["connected"])
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    eq(r.lookup_ok("zed@example.org")["backend"] in ("b1", "b2"), True,
       "a lookup places a user")
    time.sleep(0.5)
    eq(feed(r)["applied"], 0, "roostd's own changes are not applied again")

    now = int(time.time())
    # A new user, assigned by another writer.
    pg.query("INSERT INTO users (\"user\", backend, since) VALUES "
             "('alice@example.org', 'b1', %d)" % now)
    wait_for("alice assigned to b1", lambda: user_on(r, "alice@example.org",
                                                     "b1"))
    eq(lookup_backend(r, "alice@example.org"), "b1", "lookup of alice")

    # Moved to b2, then pinned there.
    pg.query("UPDATE users SET backend = 'b2' WHERE \"user\" = "
             "'alice@example.org'")
    wait_for("lookup of alice answers b2",
             lambda: lookup_backend(r, "alice@example.org") == "b2")
    pg.query("UPDATE users SET pinned = 1 WHERE \"user\" = "
             "'alice@example.org'")
    wait_for("alice pinned", lambda: r.user("alice@example.org")["pinned"])

    # A move under way elsewhere holds the user's logins; its end frees
    # them, on the backend the move's switch wrote.
    pg.query("INSERT INTO moves (\"user\", from_backend, to_backend, reason, "
             "state, created, updated) VALUES ('alice@example.org', 'b2', "
             "'b1', 'move', 'waiting', %d, %d)" % (now, now))
    wait_for("alice's lookups wait for the move",
             lambda: lookup_backend(r, "alice@example.org") == 503)
    st, js = r.lookup("alice@example.org")
    eq((st, js.get("reason")), (503, "moving"), "lookup during the move")
    pg.query("BEGIN; UPDATE users SET backend = 'b1' WHERE \"user\" = "
             "'alice@example.org'; UPDATE moves SET state = 'done' "
             "WHERE \"user\" = 'alice@example.org'; COMMIT")
    wait_for("alice's lookup after the move",
             lambda: lookup_backend(r, "alice@example.org") == "b1")

    # Deleted by another writer: roostd forgets it (and would place it anew).
    pg.query("INSERT INTO users (\"user\", backend, since) VALUES "
             "('bob@example.org', 'b1', %d)" % now)
    wait_for("bob assigned", lambda: user_on(r, "bob@example.org", "b1"))
    pg.query("DELETE FROM users WHERE \"user\" = 'bob@example.org'")
    wait_for("bob forgotten",
             lambda: not r.user("bob@example.org")["assigned"])

    # A backend added, then set down.
    pg.query("INSERT INTO backends (name, host, weight, state, port_imap, "
             "created, updated) VALUES ('b3', '127.0.0.13', 100, 'up', 143, "
             "%d, %d)" % (now, now))
    wait_for("b3 listed", lambda: r.api("GET", "/v1/backends/b3")[0] == 200)
    eq(r.backend("b3")["host"], "127.0.0.13", "b3's host")
    pg.query("UPDATE backends SET state = 'down' WHERE name = 'b3'")
    wait_for("b3 down", lambda: r.backend("b3")["state"] == "down")

    # A health verdict from another instance's probes.
    pg.query("INSERT INTO backend_health (backend, state, since, error) "
             "VALUES ('b1', 'failed', %d, 'refused by the test')" % now)
    wait_for("b1 failed",
             lambda: r.backend("b1")["health"]["state"] == "failed")
    check(not r.backend("b1")["health"]["routed"], "failed b1 not routed")

    # A proxy registered elsewhere.
    pg.query("INSERT INTO proxies (name, doveadm_url, doveadm_key, created, "
             "updated) VALUES ('px1', 'http://127.0.0.21:8080/doveadm/v1', "
             "'k', %d, %d)" % (now, now))
    wait_for("px1 listed", lambda: r.api("GET", "/v1/proxies/px1")[0] == 200)

    # The feed's connection killed: it comes back and catches up.
    before = feed(r)
    pids = pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'roostd-feed'")
    eq(len(pids), 1, "one feed connection to kill")
    pg.query("INSERT INTO users (\"user\", backend, since) VALUES "
             "('carol@example.org', 'b2', %d)" % now)
    wait_for("carol assigned after the reconnect",
             lambda: user_on(r, "carol@example.org", "b2"))
    after = wait_for("the feed listens again",
                     lambda: feed(r)["connected"] and feed(r))
    check(after["connects"] > before["connects"],
          "the feed reconnected: %r -> %r" % (before, after))
    check("connection lost" in r.log(), "the loss is logged")

    # History pruned past what roostd read (as when it was away longer
    # than the changes are kept): it reloads everything.
    pg.query("INSERT INTO users (\"user\", backend, since) VALUES "
             "('dave@example.org', 'b2', %d); "
             "DELETE FROM users WHERE \"user\" = 'carol@example.org'; "
             "INSERT INTO meta (key, value) SELECT 'changes_pruned', "
             "max(seq)::text FROM changes ON CONFLICT (key) DO UPDATE "
             "SET value = excluded.value; "
             "DELETE FROM changes" % now)
    wait_for("reloaded", lambda: feed(r)["reloads"] == 1)
    check(user_on(r, "dave@example.org", "b2"), "dave there after the reload")
    check(not r.user("carol@example.org")["assigned"],
          "carol forgotten by the reload")
    eq(lookup_backend(r, "zed@example.org") in ("b1", "b2"), True,
       "zed kept by the reload")
    # And the feed goes on from the store's head.
    pg.query("UPDATE users SET backend = 'b1' WHERE \"user\" = "
             "'dave@example.org'")
    wait_for("dave on b1", lambda: user_on(r, "dave@example.org", "b1"))
    print("feed: %r" % feed(r))
    r.secrets_absent(pg.password)


rt.run(main)
