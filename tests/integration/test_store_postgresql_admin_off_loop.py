"""An admin change or read that waits for PostgreSQL does not hold
roostd's loop.  One roostd on PostgreSQL; every store session of it (its
own and the admin lane's, not the change feed's) is stopped (SIGSTOP on
the server processes: connected and silent, as a hung server would be)
for 3 s while an admin changes a backend's weight and reads the audit
log.  Meanwhile every known user is answered with their backend, quickly,
and GET /v1/status shows the admin work waiting (an answer that a loop
waiting for the store could not give).  The change outlives the store's
bound: it either fails with 503 and changes nothing, or goes through on
a new session; after the thaw it is in memory, in the store and in the
audit log."""

import http.client
import json
import threading
import time

import roosttest as rt
from roosttest import check, eq, status

FREEZE_S = 3.0
SLOWEST_MS = 500        # a loop that waited for the store: about 2000


def session_pids(pg):
    """The server processes of roostd's store sessions and its admin
    lane's (not the feed's)."""
    return [int(p) for (p,) in pg.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name IN"
        " ('roostd', 'roostd-admin')")]


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    r, known, where = rt.pg_roost_known(t, pg)
    rt.wait_for("roostd holds every role", lambda: {
        "moves", "repl", "health:b1", "health:b2"} <= rt.roles(r))
    time.sleep(1.5)                     # start-up store work is done
    status(r.api("GET", "/v1/audit"), 200, "audit before")
    pids = session_pids(pg)
    check(pids, "roostd's store sessions")

    stop = threading.Event()
    out, seen, answers = {}, [], {}
    looker = threading.Thread(target=rt.lookups_until,
                              args=(r, known, where, stop.is_set, out))

    def admin():
        """On a connection of its own: r's is the main thread's."""
        c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=30)
        h = {"Authorization": "Bearer " + r.admin_token,
             "Content-Type": "application/json"}
        try:
            for name, method, path, body in (
                    ("patch", "PATCH", "/v1/backends/b2", {"weight": 50}),
                    ("audit", "GET", "/v1/audit", None)):
                c.request(method, path, json.dumps(body) if body else None,
                          h)
                resp = c.getresponse()
                answers[name] = (resp.status, json.loads(resp.read()))
        finally:
            c.close()
    admin_t = threading.Thread(target=admin)
    try:
        with rt.stopped(pids):
            looker.start()
            time.sleep(0.2)
            admin_t.start()
            seen = rt.status_samples(r, "store_lane", FREEZE_S)
    finally:
        stop.set()
        looker.join(30)
        admin_t.join(30)
    waits = [x.get("ms", 0) for x in seen if isinstance(x, dict) and
             x.get("what") == "backend set"]
    print("store sessions stopped %.1f s: %d status answers, %d with the "
          "admin change waiting (longest %d ms); %d lookups, slowest "
          "%.1f ms; the change: %r" % (
              FREEZE_S, len(seen), len(waits), max(waits or [0]), out["n"],
              out["slowest"] * 1000, answers.get("patch")))
    eq(out["wrong"], [], "known users answered while the store hung")
    check(out["n"] > 0, "lookups made while the store hung")
    check(out["slowest"] * 1000 < SLOWEST_MS, "the slowest lookup took "
          "%.0f ms: the loop waited for the admin change" %
          (out["slowest"] * 1000))
    check(max(waits or [0]) >= 300, "roostd answered while the admin change "
          "waited (store_lane seen: %r)" % seen[-10:])
    # The lane drops the session that does not answer and tries a new
    # one (the freeze holds the old sessions' processes, not the server):
    # either the change went through on it, or it failed and changed
    # nothing; then it goes through after the thaw.
    st, js = answers["patch"]
    check(st in (200, 503), "the change during the freeze: %r" % (js,))
    if st == 503:
        check("nothing was changed" in js.get("error", ""), "503 says "
              "nothing was changed: %r" % js)
        eq(r.backend("b2")["weight"], 100, "memory unchanged by the failure")
        st, js = rt.wait_for("the change after the thaw", lambda: (
            lambda a: a if a[0] == 200 else None)(r.api(
                "PATCH", "/v1/backends/b2", {"weight": 50})), seconds=20)
    check(answers.get("audit", (0,))[0] in (200, 503), "the audit read "
          "answered: %r" % (answers.get("audit"),))
    eq(js["weight"], 50, "the change answered")
    eq(r.backend("b2")["weight"], 50, "the change in memory")
    rows = pg.query("SELECT weight FROM backends WHERE name = 'b2'")
    eq(rows, [["50"]], "the change in the store")
    audit = status(r.api("GET", "/v1/audit"), 200, "audit after")
    eq([e["action"] for e in audit["entries"] if e["subject"] == "b2"][:1],
       ["backend.set"], "the change audited once it went through")
    for u in known[:5]:
        eq(r.lookup_ok(u)["backend"], where[u], "%s after the thaw" % u)


rt.run(main)
