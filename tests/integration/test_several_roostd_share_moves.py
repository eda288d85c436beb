"""Three roostd share one PostgreSQL store (a throw-away pgtmp cluster,
fake doveadm APIs, no Dovecot).  Each singleton role (moves, repl, the
health of each backend) is held by exactly one of them, as GET /v1/status
shows.  A flush of a backend of 300 users asked of an instance that does
not hold "moves" is stored and run by the holder only: no other instance
runs a move meanwhile, and a second flush asked of the third instance is
refused (409).  kill -9 of the holder mid-flush: a survivor takes the role
within a few seconds (the time is printed), takes up the dead holder's open
moves and its job, and the flush ends: every user off the backend on every
instance, every move over and none of them done twice.  A pin asked of an
instance without the role waits for the holder's move and answers the user
on its new backend.  The killed instance, restarted, holds no role its
survivors hold."""

import re
import time

import roosttest as rt
from roosttest import check, eq
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-share-7731"
N = 300
BOUND = 60	# seconds: a failure bound, not a speed claim


def open_moves(pg):
    return int(pg.query("SELECT count(*) FROM moves WHERE state NOT IN "
                        "('done', 'failed')")[0][0])


def done_lines(r):
    """Move ids this instance logged as done."""
    return re.findall(r"move (\d+): \S+ from \S+ to \S+ done", r.log())


def fakes():
    return {n: FakeDoveadm(a, KEY) for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
             ("b3", "127.0.0.13"), ("p1", "127.0.0.1"))}


def main(t):
    rt.on_pg(t, scenario, fakes)


def scenario(t, pg, fakes):
    store = "postgresql:" + pg.conninfo
    rs = [t.roost(store=store, move_max_parallel="10", move_timeout="20s")
          for _ in range(3)]
    for i, n in enumerate(("b1", "b2", "b3")):
        rs[0].add_backend(n, "127.0.0.%d" % (11 + i),
                          doveadm={"url": fakes[n].url, "api_key": KEY})
    eq(rs[0].api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": fakes["p1"].url, "api_key": KEY}})[0], 201, "proxy")

    # Every role has exactly one holder, once the claims have seen b1-b3.
    want = {"moves", "repl", "health:b1", "health:b2", "health:b3"}
    rt.wait_for("every role held", lambda: set().union(
        *(rt.roles(r) for r in rs)) >= want)
    for role in want:
        check(rt.role_holder(rs, role) is not None,
              "role %s has a holder" % role)
    first = rt.role_holder(rs, "moves")
    others = [r for r in rs if r is not first]

    for r in rs:
        rt.wait_for("the backends known to %s" % r.tmp,
                    lambda r=r: len(r.backends()) == 3)
    # Users placed through all three instances; each sees them all.
    names = ["u%04d@example.org" % i for i in range(N)]
    for i, u in enumerate(names):
        rs[i % 3].lookup_ok(u)
    for r in rs:
        rt.wait_for("every user known to %s" % r.tmp, lambda r=r: sum(
            b["users"] for b in r.backends()) == N)
    before = {u["user"]: u["backend"] for u in rs[0].all_users()}
    on_b1 = sorted(u for u, b in before.items() if b == "b1")
    check(len(on_b1) > 60, "b1 has users (%d)" % len(on_b1))
    for u in on_b1[:30]:
        fakes["b1"].sessions[u] = 1

    # The flush is asked of an instance without the role.
    st, js = others[0].api("POST", "/v1/backends/b1/flush")
    eq(st, 202, "flush accepted by a non-holder: %r" % js)
    st, js = others[1].api("POST", "/v1/backends/b1/flush")
    eq((st, js.get("field")), (409, "name"),
       "a second flush of b1, asked of the third instance: %r" % js)
    rt.wait_for("the holder runs the flush", lambda: int(pg.query(
        "SELECT count(*) FROM moves WHERE reason = 'flush' AND state = "
        "'done'")[0][0]) >= 20, BOUND)
    check(all(not done_lines(r) for r in others),
          "instances without the role ran no move")

    # kill -9 of the holder mid-flush.
    left = open_moves(pg)
    t_kill = time.monotonic()
    first.kill()
    heir = rt.wait_for("a survivor takes role moves",
                       lambda: rt.role_holder(others, "moves"), BOUND)
    took = time.monotonic() - t_kill
    print("role moves taken over %.2f s after kill -9 of its holder "
          "(%d moves were open)" % (took, left))
    check(took < 10, "taken over within 10 s (%.2f s)" % took)
    check(any("taken up" in l for l in heir.log().splitlines()),
          "the new holder logs what it took up")

    rt.wait_for("the flush ends", lambda: open_moves(pg) == 0 and
                pg.query("SELECT state FROM move_jobs WHERE kind = 'flush'")
                == [["done"]], BOUND)
    eq(int(pg.query("SELECT count(*) FROM users WHERE backend = 'b1'")[0][0]),
       0, "no user left on b1 in the store")
    for r in others:
        rt.wait_for("b1 empty as %s sees it" % r.tmp,
                    lambda r=r: r.backend("b1")["users"] == 0)
        after = {u["user"]: u["backend"] for u in r.all_users()}
        check(all(after[u] in ("b2", "b3") for u in on_b1),
              "every b1 user on b2 or b3 as %s answers" % r.tmp)
        eq({u: b for u, b in after.items() if u not in on_b1},
           {u: b for u, b in before.items() if b != "b1"},
           "nobody else moved (%s)" % r.tmp)
    moves = pg.query("SELECT \"user\", state FROM moves WHERE reason = "
                     "'flush'")
    eq(sorted(u for u, s in moves if s == "done"), on_b1,
       "one done flush move per b1 user")
    eq([m for m in moves if m[1] != "done"], [], "no flush move failed")
    logged = [i for r in rs for i in done_lines(r)]
    eq(len(logged), len(set(logged)), "no move was done by two instances")
    eq(fakes["b1"].sessions, {}, "no session left on b1")

    # A pin asked of the instance without the role waits for the move.
    plain = [r for r in others if r is not heir][0]
    u = on_b1[0]
    st, js = plain.api("PUT", "/v1/users/" + rt.q(u), {"backend": "b1"})
    eq((st, js.get("backend"), js.get("pinned")), (200, "b1", True),
       "a pin through a non-holder answers once moved: %r" % js)
    eq(pg.query("SELECT state FROM moves WHERE \"user\" = '%s' AND reason "
                "= 'pin'" % u), [["done"]], "the pin's move is done")
    check(not done_lines(plain), "the non-holder ran no move itself")

    # The killed instance comes back and takes nothing from the living.
    first.start()
    time.sleep(2.5)
    eq(rt.roles(first) & rt.roles(heir), set(), "no role held twice")
    check("moves" not in rt.roles(first), "the restarted instance waits")
rt.run(main)
