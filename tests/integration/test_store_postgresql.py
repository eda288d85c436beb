"""roostd on PostgreSQL (store = postgresql:...) loses nothing it
acknowledged: on a throw-away cluster (tests/pg/pgtmp) it places 2000 users
by lookups (half while b1 is down, so only the store knows where they are),
pins one, moves one, runs a rebalance job, keeps a replication queue (fake
doveadm APIs, no Dovecot), forgets a user and changes backends; after
kill -9 the database holds exactly that, and the restarted roostd answers
every user as before, lists the moves and the job's end, and syncs the
users that were still queued.  The connection string's password is in no
log and no answer; a malformed string is a FILE:LINE error of roostd -n; a
second roostd on the same store starts and shares it, holding none of the
roles the first holds (test_several_roostd_share_moves.py goes further)."""

import json
import signal
import time

import roosttest as rt
from roosttest import Conn, check, eq, error, q, status
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-pg-5521"
N = 2000


def lookup_all(r, names, what):
    c = Conn(r.port)
    auth = {"Authorization": "Bearer " + r.admin_token}
    out = {}
    t0 = time.monotonic()
    try:
        for i, u in enumerate(names):
            st, _, body = c.request("GET", "/v1/lookup?user=%s&protocol=imap"
                                    % q(u), headers=auth)
            if st != 200:
                raise rt.Failure("%s: lookup %d (%s): HTTP %d %r" %
                                 (what, i, u, st, body[:200]))
            out[u] = json.loads(body)
    finally:
        c.close()
    secs = time.monotonic() - t0
    print("%s: %d lookups in %.1fs (%.0f/s)" % (what, len(names), secs,
                                              len(names) / max(secs, 1e-6)))
    return out


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    store = "postgresql:" + pg.conninfo
    # The form is checked by roostd -n, naming the line, never the value.
    r = t.roost(start=False, store="postgresql:host=127.0.0.1 password "
                + pg.password)
    rc, out = r.check_config()
    check(rc != 0 and "roostd.conf:" in out and
          ": store: not a valid libpq connection string" in out and
          pg.password not in out,
          "roostd -n on a malformed string: %d %r" % (rc, out))
    r.write_config(store=store, replication="yes")
    rc, out = r.check_config()
    eq(rc, 0, "roostd -n on the harness's string: %r" % out)
    r.start()
    eq(status(r.api("GET", "/v1/status"), 200, "status")["store"],
       "postgresql", "status names the store")
    # A second roostd shares the store; the singleton work stays with
    # the first, which holds every role.
    r2 = t.roost(store=store)
    held = status(r.api("GET", "/v1/status"), 200, "status")["roles"]["held"]
    check({"moves", "repl"} <= set(held), "the first holds the roles: %r" %
          held)
    eq(status(r2.api("GET", "/v1/status"), 200, "status")["roles"]["held"],
       [], "the second holds none")
    eq(r2.kill(signal.SIGTERM), 0, "the second stops cleanly")

    fakes = {n: FakeDoveadm(a, KEY) for n, a in
             (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
              ("b3", "127.0.0.13"), ("b4", "127.0.0.14"))}
    for i, n in enumerate(("b1", "b2", "b3")):
        r.add_backend(n, "127.0.0.%d" % (11 + i),
                      ports={"imap": 10001 + i, "doveadm": 24245},
                      doveadm={"url": fakes[n].url, "api_key": KEY})
    names = ["user%04d@example.org" % i for i in range(N)]
    r.patch_backend("b1", state="down")
    before = lookup_all(r, names[:N // 2], "first half, b1 down")
    r.patch_backend("b1", state="up")
    before.update(lookup_all(r, names[N // 2:], "second half"))
    off_hash = sum(1 for u in names[:200] if r.user(u)["hashed"] !=
                   before[u]["backend"])
    check(off_hash > 20, "users placed while b1 was down stay off the hash "
          "(%d of 200)" % off_hash)
    # Every new user's replica gets its first sync through the fakes.
    rt.wait_for("the replication queue drains", lambda: sum(status(
        r.api("GET", "/v1/replication"), 200, "repl")["queued"].values())
        == 0, 60)

    # A pin and a move (both moves: kicks, a sync, the switch).
    pinned = names[17]
    target = next(b for b in ("b1", "b2", "b3")
                  if b != before[pinned]["backend"])
    status(r.api("PUT", "/v1/users/" + q(pinned), {"backend": target}), 200,
           "pin")
    moved = names[18]
    mtarget = next(b for b in ("b3", "b2", "b1")
                   if b != before[moved]["backend"])
    js = status(r.api("POST", "/v1/moves", {"user": moved,
                                            "backend": mtarget}), 202, "move")
    mid = js["move"]["id"]
    rt.wait_for("the move is done", lambda: status(
        r.api("GET", "/v1/moves/%d" % mid), 200, "move")["state"] == "done")
    # A rebalance job of at most 3 moves, to its end.
    job = status(r.api("POST", "/v1/rebalance", {"max": 3}), 202,
                 "rebalance")["job"]
    rt.wait_for("the rebalance ends", lambda: not status(
        r.api("GET", "/v1/moves"), 200, "moves")["jobs"])
    moves = status(r.api("GET", "/v1/moves?state=all&limit=100"), 200,
                   "moves")["moves"]
    check(len(moves) >= 2 and all(m["state"] in ("done", "failed")
                                  for m in moves),
          "every move over: %r" % [(m["id"], m["state"]) for m in moves])

    # A queue that is still waiting when roostd dies.
    status(r.api("POST", "/v1/replication/pause"), 200, "pause")
    queued = names[100:110]
    for u in queued:
        status(r.api("POST", "/v1/replication/users/" + q(u),
                     {"priority": "sync"}), 202, "queue %s" % u)
    eq(status(r.api("GET", "/v1/replication"), 200, "repl")["queued"]
       ["sync"], len(queued), "queued at sync")

    forgotten = names[42]
    status(r.api("DELETE", "/v1/users/" + q(forgotten)), 200, "forget")
    r.add_backend("b4", "127.0.0.14", ports={"imap": 10004, "doveadm": 24245},
                  doveadm={"url": fakes["b4"].url, "api_key": KEY})
    r.add_backend("gone", "127.0.0.15")
    status(r.api("DELETE", "/v1/backends/gone"), 200, "delete gone")
    patched = r.patch_backend("b3", weight=250, ports={"pop3": 2110})
    del before[forgotten]
    before = lookup_all(r, list(before), "before the crash")
    late = ["late%03d" % i for i in range(100)]
    before.update(lookup_all(r, late, "late users"))
    backends_before = r.backends()
    user_pinned = r.user(pinned)
    user_moved = r.user(moved)
    eq((user_pinned["backend"], user_pinned["pinned"]), (target, True),
       "the pinned user")
    eq(user_moved["backend"], mtarget, "the moved user")

    syncs = {x: len(fakes[before[x]["backend"]].commands("sync", x))
             for x in queued}
    check(r.kill() != 0, "kill -9")

    # -- the database holds what was acknowledged, before any restart.
    rows = dict((u, b) for u, b in pg.query(
        'SELECT "user", backend FROM users'))
    eq(len(rows), len(before), "users in the database")
    wrong = [u for u in before if rows.get(u) != before[u]["backend"]]
    check(not wrong, "%d users stored elsewhere than answered, e.g. %r" %
          (len(wrong), wrong[:3]))
    eq(pg.query('SELECT backend, pinned FROM users WHERE "user" = \'%s\''
                % pinned), [[target, "1"]], "the pin in the database")
    eq(sorted(r[0] for r in pg.query("SELECT name FROM backends")),
       ["b1", "b2", "b3", "b4"], "backends in the database")
    eq(pg.query("SELECT state FROM moves WHERE id = %d" % mid), [["done"]],
       "the move in the database")
    eq(pg.query("SELECT state FROM move_jobs WHERE id = %d" % job["id"]),
       [["done"]], "the job in the database")
    # The users queued at sync, and the late ones (new, paused) for their
    # first sync: each at its priority.
    prio = dict((u, p) for u, p in pg.query(
        'SELECT "user", priority FROM repl WHERE priority IS NOT NULL'))
    eq(sorted(prio), sorted(queued + late),
       "the replication queue in the database")
    eq({prio[u] for u in queued}, {"0"}, "queued at sync (0) in the database")
    check(int(pg.query("SELECT count(*) FROM audit")[0][0]) >= 8,
          "admin changes audited")

    # -- restarted: the same answers.
    r.start()
    eq(r.backends(), backends_before, "backends after kill -9")
    b3 = r.backend("b3")
    eq((b3["weight"], b3["ports"]["pop3"], b3["updated"]),
       (250, 2110, patched["updated"]), "the PATCH survived")
    error(r.api("GET", "/v1/backends/gone"), 404, None, "gone stays gone")
    u = r.user(pinned)
    eq((u["backend"], u["pinned"], u["since"]),
       (user_pinned["backend"], True, user_pinned["since"]),
       "the pin survived")
    eq(r.user(forgotten)["assigned"], False, "the forget survived")
    after = lookup_all(r, list(before), "after restart")
    diff = [x for x in before if before[x] != after[x]]
    check(not diff, "%d of %d users answered differently after kill -9, "
          "e.g. %r" % (len(diff), len(before), diff[:2]))
    js = status(r.api("GET", "/v1/moves/%d" % mid), 200, "move after")
    eq((js["state"], js["user"], js["to"]), ("done", moved, mtarget),
       "the move after restart")
    # The queue survived: each queued user is synced after the restart
    # (replication is not paused any more).
    rt.wait_for("the queued users synced", lambda: all(
        len(fakes[before[x]["backend"]].commands("sync", x)) > syncs[x]
        for x in queued), 30)
    rt.wait_for("the queue drains after the restart", lambda: sum(status(
        r.api("GET", "/v1/replication"), 200, "repl")["queued"].values())
        == 0, 30)
    r.secrets_absent(pg.password, KEY)
    r2.secrets_absent(pg.password)
    for f in fakes.values():
        f.close()


rt.run(main)
