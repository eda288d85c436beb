"""roostd -C copies a SQLite store into PostgreSQL and roostd carries on
there as if nothing happened: a roostd on SQLite (replication on, fake
doveadm APIs, no Dovecot) gets 3 backends, a proxy, 200 users by lookups
(each synced once to its replica), a pin and 5 users queued while
replication is paused.  The copy refuses while that roostd runs, from a
missing file, to an unreachable server and into a store that holds
anything, each time with a message on stderr, a non-zero exit and nothing
written.  Stopped, the copy (FROM taken from the configuration) prints its
counts, and the PostgreSQL tables hold the SQLite rows exactly: every
replication record, moves, jobs and audit with their ids.  roostd started
on the PostgreSQL store answers every user on the same backend, shows the
same users, pins, replicas, backends, proxies, moves, audit and
replication records (but for what its first syncs change), and syncs the
queued users and everybody else from the dsync state each had on SQLite.
The connection string's password is printed nowhere."""

import signal
import sqlite3
import subprocess

import roosttest as rt
from roosttest import check, eq, q, status
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-copy-3391"
N = 200
REPL_COLS = ("user, priority, queued, due, full, fails, stuck, error, "
             "state, last_fast, last_full, last_ok")
PG_REPL_COLS = ('"user", priority, queued, due, "full", fails, stuck, error, '
                'state, last_fast, last_full, last_ok')


def copy(r, *args):
    """roostd -f CONF -C ARGS: (exit code, stdout, stderr)."""
    p = subprocess.run([rt.ROOSTD, "-f", r.conf_path, "-C"] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def refused(res, want, what):
    rc, out, err = res
    check(rc not in (0, None) and want in err and out == "",
          "%s: exit %d, stdout %r, stderr %r (want %r)" %
          (what, rc, out, err, want))
    return err


def pg_tables(pg):
    return int(pg.query("SELECT count(*) FROM pg_tables"
                        " WHERE schemaname = 'public'")[0][0])


def sqlite_rows(path, sql):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return [["" if v is None else str(v) for v in row]
                for row in db.execute(sql)]
    finally:
        db.close()


def same(what, got, want):
    """eq for big dicts: the message names the first keys that differ."""
    if got != want:
        if isinstance(got, dict) and isinstance(want, dict):
            keys = sorted(k for k in set(got) | set(want)
                          if got.get(k) != want.get(k))
            raise rt.Failure("%s: %d differ, e.g. %r: got %r, want %r" %
                             (what, len(keys), keys[0], got.get(keys[0]),
                              want.get(keys[0])))
        eq(got, want, what)


def settled(r):
    """Nothing queued, running, waiting or backing off."""
    js = status(r.api("GET", "/v1/replication"), 200, "replication")
    return (sum(js["queued"].values()) + js["running"] + js["waiting"] +
            js["backoff"]) == 0


def seen(r, names):
    """What the API shows of the store: users, their replication records,
    backends, proxies, moves and audit."""
    return {
        "users": {u: r.user(u) for u in names},
        "repl": {u: status(r.api("GET", "/v1/replication/users/" + q(u)),
                           200, "replication of " + u) for u in names},
        "backends": r.backends(),
        "proxies": status(r.api("GET", "/v1/proxies"), 200, "proxies"),
        "moves": status(r.api("GET", "/v1/moves?state=all&limit=1000"), 200,
                        "moves")["moves"],
        "audit": status(r.api("GET", "/v1/audit?limit=1000"), 200,
                        "audit")["entries"],
    }


def main(t):
    rt.on_pg(t, scenario, lambda: {
        n: FakeDoveadm("127.0.0.%d" % a, KEY)
        for n, a in (("b1", 31), ("b2", 32), ("b3", 33))})


def scenario(t, pg, fakes):
    pgurl = "postgresql:" + pg.conninfo
    # No periodic full syncs: a restart's walk would queue users anew.
    r = t.roost(replication="yes", replication_full_sync_interval="0")
    for i, n in enumerate(("b1", "b2", "b3")):
        r.add_backend(n, "127.0.0.%d" % (31 + i),
                      ports={"imap": 11001 + i, "doveadm": 24245},
                      doveadm={"url": fakes[n].url, "api_key": KEY})
    status(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": "http://127.0.0.39:8080/doveadm/v1", "api_key": "pxy-k"}}),
        201, "add proxy")
    names = ["user%03d@example.org" % i for i in range(N)]
    where = {u: r.lookup_ok(u)["backend"] for u in names}
    rt.wait_for("every new user synced to its replica",
                lambda: settled(r), 60)
    pinned = names[5]
    target = next(b for b in ("b1", "b2", "b3") if b != where[pinned])
    status(r.api("PUT", "/v1/users/" + q(pinned), {"backend": target}), 200,
           "pin")
    rt.wait_for("the pin's move is done", lambda: r.user(pinned)["backend"]
                == target)
    where[pinned] = target
    rt.wait_for("the pinned user synced", lambda: settled(r))
    status(r.api("POST", "/v1/replication/pause"), 200, "pause")
    queued = names[10:15]
    for u in queued:
        status(r.api("POST", "/v1/replication/users/" + q(u),
                     {"priority": "sync"}), 202, "queue " + u)

    # roostd runs on the source: the copy refuses and touches nothing.
    refused(copy(r, pgurl), "in use by pid", "copy while roostd runs")
    eq(pg_tables(pg), 0, "PostgreSQL untouched")

    before = seen(r, names)
    check(all(before["repl"][u]["state"] == "queued" and
              before["repl"][u]["priority"] == "sync" for u in queued),
          "the queued users show queued at sync")
    idle = [u for u in names if u not in queued]
    busy = [before["repl"][u] for u in idle if before["repl"][u]["state"]
            != "idle" or not before["repl"][u]["last_full_sync"]]
    check(not busy, "every other user synced once, idle: %r" % busy[:2])
    r.kill(signal.SIGTERM)
    eq(r.wait_exit(15), 0, "roostd stops on SIGTERM")
    repl_sqlite = sqlite_rows(r.db_path, "SELECT %s FROM repl ORDER BY user"
                              % REPL_COLS)
    eq(len(repl_sqlite), N, "a replication record per user in SQLite")
    state = {row[0]: row[8] for row in repl_sqlite}
    check(all(state[u].startswith("fake-state-") for u in names),
          "every user has a dsync state")

    # Bad input: a clear message, a non-zero exit, nothing written.
    refused(copy(r, "sqlite:%s/nosuch.db" % t.base, pgurl),
            "source: %s/nosuch.db: No such file" % t.base, "missing FROM")
    closed = rt.free_port()
    err = refused(copy(r, "postgresql:host=127.0.0.1 port=%d user=roost "
                       "dbname=roost password=%s connect_timeout=3" %
                       (closed, pg.password)),
                  "roostd: copy: destination: postgresql store: connect: ",
                  "unreachable TO")
    check(pg.password not in err, "the password is not in the message")
    rc, out, err = copy(r)
    check(rc == 2 and "usage:" in err, "-C without TO: usage, exit 2")
    eq(pg_tables(pg), 0, "PostgreSQL still untouched")

    # The copy, from the configuration's store.
    rc, out, err = copy(r, pgurl)
    eq(rc, 0, "the copy: stdout %r stderr %r" % (out, err))
    print(out.rstrip())
    counts = dict(line.split() for line in out.splitlines()
                  if line.startswith("  "))
    eq((counts["backends"], counts["proxies"], counts["users"],
        counts["replication"]), ("3", "1", str(N), str(N)),
       "the copy's counts")
    eq(counts["moves"], str(len(before["moves"])), "moves copied")
    check(out.startswith("copied SQLite store %s to PostgreSQL store:\n" %
                         r.db_path) and "\nverified: " in out,
          "the summary names both stores: %r" % out)
    check(pg.password not in out + err, "the password is not printed")
    repl_pg = pg.query('SELECT %s FROM repl ORDER BY "user" COLLATE "C"' %
                       PG_REPL_COLS)
    eq(repl_pg, repl_sqlite, "the replication records in PostgreSQL")
    for table, cols in (("moves", "id, state, created, updated"),
                        ("audit", "id, at, action, subject"),
                        ("move_jobs", "id, state, made, updated")):
        eq(pg.query("SELECT %s FROM %s ORDER BY id" % (cols, table)),
           sqlite_rows(r.db_path, "SELECT %s FROM %s ORDER BY id" %
                       (cols, table)), "%s kept with their ids" % table)

    # Only into an empty store.
    refused(copy(r, pgurl), "the destination is not empty (it has 3 "
            "backends, 1 proxies, ", "a second copy")
    eq(pg.query("SELECT count(*) FROM users"), [[str(N)]],
       "the second copy wrote nothing")

    # roostd on PostgreSQL: the same store, seen through the API.
    r.write_config(store=pgurl, replication="yes",
                   replication_full_sync_interval="0")
    syncs = {u: len(fakes[where[u]].commands("sync", u)) for u in names}
    r.start()
    eq(status(r.api("GET", "/v1/status"), 200, "status")["store"],
       "postgresql", "roostd runs on PostgreSQL")
    after = seen(r, names)
    for what in ("users", "backends", "proxies", "moves"):
        same(what + " after the copy", after[what], before[what])
    eq([a for a in after["audit"] if a["id"] <= before["audit"][0]["id"]],
       before["audit"], "the audit after the copy")
    # What a sync changes aside (roostd queues an incremental sync of
    # every current replica once after its start), the records are the
    # ones roostd had on SQLite.
    synced = ("state", "priority", "last_fast_sync", "last_success")
    same("the replication records of the idle users",
         {u: {k: v for k, v in after["repl"][u].items() if k not in synced}
          for u in idle},
         {u: {k: v for k, v in before["repl"][u].items() if k not in synced}
          for u in idle})
    eq({u: where[u] for u in names},
       {u: r.lookup_ok(u)["backend"] for u in names},
       "every user answers the same backend")
    # Not paused any more: the queued users sync, and so does everybody
    # else once after the start, each from the dsync state it had on
    # SQLite.
    rt.wait_for("every user synced", lambda: all(
        len(fakes[where[u]].commands("sync", u)) > syncs[u]
        for u in names), 30)
    wrong = [u for u in names if fakes[where[u]].commands("sync", u)
             [syncs[u]].get("state") != state[u]]
    check(not wrong, "%d users synced from another state than their "
          "copied one, e.g. %r" % (len(wrong), wrong[:3]))
    rt.wait_for("the queue drains", lambda: settled(r))
    r.secrets_absent(pg.password, KEY, "pxy-k")


rt.run(main)
