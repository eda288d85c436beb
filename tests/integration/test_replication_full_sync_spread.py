"""replication_full_sync_interval spreads the periodic full syncs evenly
over the interval: with 120 users and the shortest interval (60 s), about
two a second, never the whole population at once, each user at most once
per interval, and never ahead of real changes (they go first).  Fake
doveadm APIs stand in for the backends."""
# run.py: alongside (half a minute of watching a clock; no fixed port)
import time

import roosttest as rt
from roosttest import check, eq, status
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-spread-4410"
N = 120
WATCH = 30	# seconds watched: half the interval


def full_syncs(fakes, since=None):
    """The full syncs every fake saw, after the first `since[name]`."""
    out = []
    for name, f in sorted(fakes.items()):
        calls = [p for p in f.commands("sync") if p.get("fullSync")]
        out += calls[(since or {}).get(name, 0):]
    return out


def main(t):
    fakes = {n: FakeDoveadm(a, KEY) for n, a in
             (("b1", "127.0.0.11"), ("b2", "127.0.0.12"))}
    r = t.roost(replication="yes", replication_full_sync_interval="60s")
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        r.add_backend(n, a, ports={"doveadm": 24245},
                      doveadm={"url": fakes[n].url, "api_key": KEY})
    users = ["s%03d" % i for i in range(N)]
    for u in users:
        r.lookup_ok(u)
    # Every new replica gets its first (full) sync at once.
    end = time.monotonic() + 20
    while time.monotonic() < end and not all(
            status(r.api("GET", "/v1/replication/users/" + u), 200,
                   "record")["replica_current"] for u in users):
        time.sleep(0.1)
    first = full_syncs(fakes)
    # (the periodic walk may already have passed a user or two)
    eq(sorted(set(p["user"] for p in first)), users,
       "a first full sync for every user")

    # Then the periodic ones, watched second by second.
    per_s = []
    seen = {}
    base = len(first)
    before = {n: len([p for p in f.commands("sync") if p.get("fullSync")])
              for n, f in fakes.items()}
    t0 = time.monotonic()
    for s in range(WATCH):
        time.sleep(max(0.0, t0 + s + 1 - time.monotonic()))
        now = full_syncs(fakes)
        per_s.append(len(now) - base - sum(per_s))
        if s == WATCH // 2:
            # A real change meanwhile goes ahead of the full ones.
            u = users[7]
            code, js = r.api("POST", "/v1/replication/users/" + u,
                             {"priority": "high"})
            eq(code, 202, "queue %s high" % u)
    for p in full_syncs(fakes, before):
        seen[p["user"]] = seen.get(p["user"], 0) + 1
    total = sum(per_s)
    print("full syncs a second over %d s: %s (total %d; %d users, 60 s)"
          % (WATCH, per_s, total, N))
    check(N * WATCH / 60 * 0.5 <= total <= N * WATCH / 60 * 1.5,
          "about %d full syncs in %d s, got %d" % (N * WATCH / 60, WATCH,
                                                   total))
    check(max(per_s) <= 15, "no burst: at most 15 in a second: %r" % per_s)
    check(sum(1 for x in per_s if x > 0) >= WATCH // 2,
          "spread: full syncs in at least half the seconds: %r" % per_s)
    check(all(n == 1 for n in seen.values()),
          "each user at most once in half an interval: %r"
          % {u: n for u, n in seen.items() if n > 1})
    js = status(r.api("GET", "/v1/replication/users/" + users[7]), 200,
                "record")
    check(js["last_fast_sync"] is not None,
          "the high-priority sync ran, incremental: %r" % js)
    for f in fakes.values():
        f.close()


rt.run(main)
