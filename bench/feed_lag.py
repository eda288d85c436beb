#!/usr/bin/env python3
"""feed_lag.py: the change feed's propagation time, from another writer's
commit on PostgreSQL to roostd's HTTP API showing the change.

  bench/feed_lag.py [--count N] [--build DIR] [--json FILE]

Starts a throw-away PostgreSQL cluster (tests/pg/pgtmp) and a roostd on it
(store = postgresql:..., two backends b1 and b2, one user), then plays
"another instance": one psql session on the same database moves the user
between b1 and b2 N times (default 200), one UPDATE at a time.  For each,
the clock starts when the UPDATE is sent and stops when GET /v1/users/USER
(polled back to back on one keep-alive connection) names the new backend;
the next change waits for that.  So each lag is an upper bound: it includes
the UPDATE's own round trip and commit (reported on its own too), and up
to one poll.

Prints p50, p99 (nearest rank) and max in ms, the feed's own view
(GET /v1/status "feed": commit time in the store to applied in memory, of
the last change), then one JSON line; --json FILE writes the same with
every lag.  Standard library only (and the harness of tests/integration).
Exit 0 when every change arrived, 1 when some did not within 5 s.
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import roosttest as rt  # noqa: E402

USER = "feedlag@example.org"
TIMEOUT = 5.0


def pct(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


class Psql:
    """One psql session read from a pipe: each statement is followed by an
    \\echo marker, so its commit is known without a new process."""

    def __init__(self, conninfo):
        psql = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
        if not psql:
            raise SystemExit("feed_lag: psql not installed")
        self.p = subprocess.Popen([psql[-1], "-X", "-q", "-tA", "-v",
                                   "ON_ERROR_STOP=1", "-d", conninfo],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True,
                                  bufsize=1)
        self.n = 0

    def run(self, sql):
        self.n += 1
        mark = "feed_lag_done_%d" % self.n
        self.p.stdin.write("%s;\n\\echo %s\n" % (sql, mark))
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit("feed_lag: psql ended")
            if line.strip() == mark:
                return

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def user_backend(conn, token):
    st, _, body = conn.request("GET", "/v1/users/" + rt.q(USER),
                               headers={"Authorization": "Bearer " + token})
    if st != 200:
        return None
    return json.loads(body).get("backend")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--json")
    a = ap.parse_args()
    if not 1 <= a.count <= 100000:
        raise SystemExit("feed_lag: --count must be 1..100000")
    os.environ["ROOST_BUILD"] = os.path.abspath(a.build)
    rt.ROOSTD = os.path.join(os.environ["ROOST_BUILD"], "roostd")

    t = rt.Test()
    pg = None
    try:
        pg = rt.Pg()
        r = t.roost(store="postgresql:" + pg.conninfo, log_level="warn")
        r.add_backend("b1", "127.0.0.11")
        r.add_backend("b2", "127.0.0.12")
        pg.query("INSERT INTO users (\"user\", backend, since) VALUES "
                 "('%s', 'b1', %d)" % (USER, int(time.time())))
        conn = rt.Conn(r.port)
        deadline = time.monotonic() + TIMEOUT
        while user_backend(conn, r.admin_token) != "b1":
            if time.monotonic() > deadline:
                raise SystemExit("feed_lag: the first change never came")
        sql = Psql(pg.conninfo)
        lags, commits, missing = [], [], 0
        cur = "b1"
        for _ in range(a.count):
            to = "b2" if cur == "b1" else "b1"
            t0 = time.monotonic()
            sql.run("UPDATE users SET backend = '%s' WHERE \"user\" = '%s'"
                    % (to, USER))
            commits.append((time.monotonic() - t0) * 1000.0)
            while True:
                if user_backend(conn, r.admin_token) == to:
                    lags.append((time.monotonic() - t0) * 1000.0)
                    break
                if time.monotonic() - t0 > TIMEOUT:
                    missing += 1
                    break
            cur = to
        sql.close()
        st, status = r.api("GET", "/v1/status")
        feed = status.get("feed") if st == 200 else None
        conn.close()
    finally:
        t.cleanup()
        if pg is not None:
            pg.stop()

    s = sorted(lags)
    c = sorted(commits)
    report = {
        "what": "feed_lag", "count": a.count, "arrived": len(lags),
        "missing": missing,
        "p50_ms": round(pct(s, 50), 3) if s else None,
        "p99_ms": round(pct(s, 99), 3) if s else None,
        "max_ms": round(s[-1], 3) if s else None,
        "commit_p50_ms": round(pct(c, 50), 3) if c else None,
        "commit_p99_ms": round(pct(c, 99), 3) if c else None,
        "feed": feed,
    }
    print("feed lag over %d changes: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
          "%s" % (len(s), report["p50_ms"] or 0, report["p99_ms"] or 0,
                  report["max_ms"] or 0,
                  (", %d missing" % missing) if missing else ""))
    print("of which the UPDATE's commit (psql's answer): p50 %.2f ms, "
          "p99 %.2f ms" % (report["commit_p50_ms"] or 0,
                           report["commit_p99_ms"] or 0))
    print("roostd's feed: %s" % json.dumps(feed))
    print(json.dumps(report))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(report, lags_ms=lags), f)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
