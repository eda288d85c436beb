"""The holder of role moves looks for moves and jobs that other instances
stored (every second) without holding its loop.  One roostd on
PostgreSQL holds every role; its store session is stopped (SIGSTOP on its
server process: connected and silent, as a hung server would be) for 3 s.
Its look at the store waits for an answer that does not come, and
meanwhile it answers: GET /v1/status shows the moves scan in flight for
0.3 s and more (an answer that a loop waiting for the scan could not
give), and every known user is answered with their backend.  After the
thaw roostd reconnects by itself, takes its roles back and moves a user
when asked."""

import threading
import time

import roosttest as rt
from roosttest import check, eq

FREEZE_S = 3.0
ATTEMPTS = 3


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    r, known, where = rt.pg_roost_known(t, pg)
    # Every role held (the backends' health roles come with the next
    # claim round): then the look for moves is the store work of a tick.
    rt.wait_for("roostd holds every role", lambda: {
        "moves", "repl", "health:b1", "health:b2"} <= rt.roles(r))
    time.sleep(1.5)			# start-up store work is done
    pids = rt.store_session_pids(pg)
    eq(len(pids), 1, "one store session: %r" % pids)

    # The holder's other periodic question (replication requests, each
    # second too) may take the stopped session first, and the scan then
    # waits behind it unsent: stop it again until a scan is what waits.
    for attempt in range(1, ATTEMPTS + 1):
        stop = threading.Event()
        out, seen = {}, []
        looker = threading.Thread(target=rt.lookups_until,
                                  args=(r, known, where, stop.is_set, out))
        try:
            with rt.stopped(pids):
                looker.start()
                seen = rt.status_samples(r, "store_flight", FREEZE_S)
        finally:
            stop.set()
            looker.join(30)
        scans = [f["ms"] for f in seen if isinstance(f, dict) and
                 f.get("what") == "moves scan"]
        print("attempt %d: store session stopped %.1f s: %d status answers, "
              "%d during a moves scan (longest %d ms); %d lookups, slowest "
              "%.1f ms" % (attempt, FREEZE_S, len(seen), len(scans),
                           max(scans or [0]), out["n"],
                           out["slowest"] * 1000))
        eq(out["wrong"], [], "known users answered while the session hung")
        if max(scans or [0]) >= 300 or attempt == ATTEMPTS:
            break
        rt.wait_for("the roles back", lambda: "moves" in rt.roles(r),
                    seconds=20)
        pids = rt.store_session_pids(pg)
    check(max(scans or [0]) >= 300, "roostd answered while its moves scan "
          "waited (store_flight seen: %r)" % seen[-10:])
    check(out["n"] > 0, "lookups made while the session hung")

    rt.wait_for("the roles back", lambda: "moves" in rt.roles(r),
                seconds=20)
    u = known[0]
    other = "b2" if where[u] == "b1" else "b1"
    rt.wait_for("a pin taken after the thaw", lambda: r.api(
        "PUT", "/v1/users/" + rt.q(u), {"backend": other})[0] == 200,
        seconds=20)
    eq(r.lookup_ok(u)["backend"], other, "the pinned user's lookup")


rt.run(main)
