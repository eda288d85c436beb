"""A roostd that holds no role asks the store for them every second
without holding its loop.  Two roostd on one PostgreSQL: A, started
first, holds every role; B asks each second.  B's store session is then
stopped (SIGSTOP on its server process: connected, silent, as a hung
server or a network dropping replies would be) for 3 s.  B's claim waits
for an answer that does not come, and meanwhile B answers: its status
shows the claim waiting 0.3 s and more (an answer that a loop waiting for
the claim could not give), and every known user is answered with their
backend.  The claim ends at the store's bound, B reconnects by itself,
A keeps every role, and B places a new user again."""

import os
import signal
import threading
import time

import roosttest as rt
from roosttest import check, eq, status

FREEZE_S = 3.0


def main(t):
    rt.on_pg(t, scenario)


def roles_state(r):
    return status(r.api("GET", "/v1/status"), 200, "status")["roles"]


def session_pid(pg, a_pids):
    """The one store session that is not among a_pids (A's)."""
    pids = [p for p in rt.store_session_pids(pg) if p not in a_pids]
    eq(len(pids), 1, "one store session besides A's: %r" % pids)
    return pids[0]


def scenario(t, pg, made):
    store = "postgresql:" + pg.conninfo
    a = t.roost(store=store)
    a.add_backend("b1", "127.0.0.11")
    a.add_backend("b2", "127.0.0.12")
    rt.wait_for("A holds every role", lambda: {"moves", "repl", "health:b1",
                "health:b2"} <= set(roles_state(a)["held"]))
    a_pids = set(rt.store_session_pids(pg))
    b = t.roost(store=store)
    known = ["known%02d" % i for i in range(20)]
    where = {u: b.lookup_ok(u)["backend"] for u in known}
    eq(roles_state(b)["held"], [], "B holds no role")
    time.sleep(2.5)			# B's start-up store work is done
    pid = session_pid(pg, a_pids)

    stop = threading.Event()
    out, seen = {}, []
    looker = threading.Thread(target=rt.lookups_until,
                              args=(b, known, where, stop.is_set, out))
    os.kill(pid, signal.SIGSTOP)
    try:
        looker.start()
        end = time.monotonic() + FREEZE_S
        while time.monotonic() < end:
            seen.append(roles_state(b).get("claiming_ms", -1))
            time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGCONT)
        stop.set()
        looker.join(30)
    print("B's session stopped %.1f s: %d status answers, the longest "
          "claim waiting %d ms; %d lookups, slowest %.1f ms" %
          (FREEZE_S, len(seen), max(seen), out["n"],
           out["slowest"] * 1000))
    check(max(seen) >= 300, "B answered while its claim waited "
          "(claiming_ms seen: %r)" % seen[-10:])
    eq(out["wrong"], [], "known users answered while B's session hung")
    check(out["n"] > 0, "lookups made while B's session hung")

    rt.wait_for("B places a new user again",
                lambda: b.lookup("late@example.org")[0] == 200, seconds=20)
    eq(b.lookup_ok("late@example.org")["backend"],
       a.lookup_ok("late@example.org")["backend"], "A answers B's placement")
    eq(roles_state(b)["held"], [], "B still holds no role")
    check({"moves", "repl", "health:b1", "health:b2"} <=
          set(roles_state(a)["held"]), "A kept every role")


rt.run(main)
