"""A pin asked of a roostd that does not run moves is answered with the
user on the new backend, even when that instance's change feed is behind.

Two roostd share one PostgreSQL store (a throw-away pgtmp cluster, fake
doveadm APIs).  The second one's feed session is stopped (SIGSTOP of its
server process) while an admin pins a user through it: the holder of
"moves" runs the move and stores its end, and the second instance's own
reads of the store see that end long before its feed brings the user's
new row.  Its answer must still be the user on the pinned backend, as
every later lookup will be, not the row it had before the move."""

import threading
import time

import roosttest as rt
from roosttest import check, eq
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-pin-4417"
FREEZE_S = 3.0
BOUND = 30	# seconds: a failure bound, not a speed claim


def fakes():
    return {n: FakeDoveadm(a, KEY) for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
             ("p1", "127.0.0.1"))}


def main(t):
    rt.on_pg(t, scenario, fakes)


def feed_pids(pg):
    return {int(p) for (p,) in pg.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name ="
        " 'roostd-feed'")}


def scenario(t, pg, fakes):
    store = "postgresql:" + pg.conninfo
    holder = t.roost(store=store, move_timeout="20s")
    rt.wait_for("the first instance holds moves",
                lambda: "moves" in rt.roles(holder))
    rt.wait_for("its feed listens", lambda: len(feed_pids(pg)) == 1)
    before = feed_pids(pg)
    plain = t.roost(store=store, move_timeout="20s")
    rt.wait_for("the second feed listens", lambda: len(feed_pids(pg)) == 2)
    plain_feed = sorted(feed_pids(pg) - before)
    eq(len(plain_feed), 1, "the second instance's feed session")

    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        holder.add_backend(n, a, doveadm={"url": fakes[n].url,
                                          "api_key": KEY})
    eq(holder.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": fakes["p1"].url, "api_key": KEY}})[0], 201, "proxy")
    u = "pinned@example.org"
    was = holder.lookup_ok(u)["backend"]
    to = "b1" if was == "b2" else "b2"
    rt.wait_for("the user known to the second instance",
                lambda: plain.user(u)["backend"] == was)
    check("moves" not in rt.roles(plain), "the second instance runs no "
          "moves")

    out = {}

    def pin():
        out["answer"] = plain.api("PUT", "/v1/users/" + rt.q(u),
                                  {"backend": to})
        out["at"] = time.monotonic()

    th = threading.Thread(target=pin)
    with rt.stopped(plain_feed, hold=FREEZE_S):
        th.start()
        rt.wait_for("the holder ends the move", lambda: pg.query(
            "SELECT state FROM moves WHERE \"user\" = '%s' AND reason = "
            "'pin'" % u) == [["done"]], BOUND)
        ended = time.monotonic()
    thawed = time.monotonic()
    th.join(BOUND)
    check("answer" in out, "the pin was answered")
    st, js = out["answer"]
    print("move ended %.2f s before the feed was let go; the pin answered "
          "%.2f s after that" % (thawed - ended, out["at"] - thawed))
    eq((st, js.get("backend"), js.get("pinned")), (200, to, True),
       "the pin's answer (the second instance's feed behind): %r" % js)
    eq(plain.lookup_ok(u)["backend"], to, "a lookup after it")
    eq(holder.lookup_ok(u)["backend"], to, "a lookup of the holder")


rt.run(main)
