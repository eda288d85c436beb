"""Nothing acknowledged is lost: 10,000 users placed by lookups, then kill -9
of roostd and a restart on the same store route every user exactly as
before; a pin, a forget, a backend PATCH, add and delete made just before
the kill survive it too."""

import json
import signal
import time

import roosttest as rt
from roosttest import Conn, check, eq, error, q, status

N = 10000
BUDGET = 200	# seconds for the N lookups (bounded; the runner allows 300)


def lookup_all(r, names, what):
    """Look every name up over one keep-alive connection."""
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
            if time.monotonic() - t0 > BUDGET:
                raise rt.Failure("%s: only %d lookups in %ds" %
                                 (what, i + 1, BUDGET))
    finally:
        c.close()
    print("%s: %d lookups in %.1fs" % (what, len(names),
                                        time.monotonic() - t0))
    return out


def main(t):
    r = t.roost()
    for i in range(1, 4):
        r.add_backend("b%d" % i, "127.0.0.%d" % (10 + i),
                      ports={"imap": 10000 + i})
    names = ["user%05d@example.org" % i for i in range(N)]
    # Half the users placed while b1 is down: their assignment is not what
    # the hash says once b1 is up, so only the store can bring it back.
    r.patch_backend("b1", state="down")
    before = lookup_all(r, names[:N // 2], "first half, b1 down")
    r.patch_backend("b1", state="up")
    before.update(lookup_all(r, names[N // 2:], "second half"))
    counts = {}
    for js in before.values():
        counts[js["backend"]] = counts.get(js["backend"], 0) + 1
    eq(sorted(counts), ["b1", "b2", "b3"], "users spread over all backends")
    off_hash = sum(1 for u in names[:300] if r.user(u)["hashed"] !=
                   before[u]["backend"])
    check(off_hash > 30, "users placed while b1 was down stay off the hash "
          "(%d of 300)" % off_hash)
    eq(status(r.api("GET", "/v1/status"), 200, "status")["users"], N,
       "status counts every user")

    # Changes acknowledged right before the crash.
    victim = names[17]
    target = next(b for b in ("b1", "b2", "b3")
                  if b != before[victim]["backend"])
    status(r.api("PUT", "/v1/users/" + q(victim), {"backend": target}), 200,
           "pin")
    forgotten = names[42]
    status(r.api("DELETE", "/v1/users/" + q(forgotten)), 200, "forget")
    r.add_backend("b4", "127.0.0.14")
    r.add_backend("gone", "127.0.0.15")
    status(r.api("DELETE", "/v1/backends/gone"), 200, "delete gone")
    patched = r.patch_backend("b3", weight=250, state="drain",
                              ports={"pop3": 2110},
                              doveadm={"url": "http://127.0.0.13:8080/x",
                                       "api_key": "k-crash-test"})
    # The reference answers, right before the crash (replicas may have
    # changed with b4; backends have not, but for the pinned user).
    del before[forgotten]
    first = before
    before = lookup_all(r, list(first), "before the crash")
    moved = [u for u in first if first[u]["backend"] != before[u]["backend"]]
    eq(moved, [victim], "only the pinned user changed backend")
    backends_before = r.backends()
    user_before = r.user(victim)
    # Fresh users placed after b4 exists, the last thing before the crash:
    # each answer must already be in the store.
    late = ["late%03d" % i for i in range(200)]
    late_before = lookup_all(r, late, "late users")

    rc = r.kill()
    for b in backends_before:
        b["users"] += sum(1 for js in late_before.values()
                          if js["backend"] == b["name"])
    check(any(js["backend"] == "b4" for js in late_before.values()),
          "the new backend takes some new users")
    check(rc != 0, "kill -9 ended roostd (rc %r)" % rc)
    r.start()

    eq(r.backends(), backends_before, "backends after kill -9")
    eq(r.backend("b3"), patched, "the PATCH survived kill -9")
    error(r.api("GET", "/v1/backends/gone"), 404, None,
          "deleted backend stays deleted")
    u = r.user(victim)
    eq((u["backend"], u["pinned"], u["since"]),
       (user_before["backend"], True, user_before["since"]),
       "the pin survived kill -9")
    eq(r.user(forgotten)["assigned"], False, "the forget survived kill -9")
    eq(status(r.api("GET", "/v1/status"), 200, "status")["users"],
       N - 1 + len(late), "user count after restart")

    # Every user routed as before.
    after = lookup_all(r, list(before), "after restart")
    diff = [u for u in before if before[u] != after[u]]
    check(not diff, "%d of %d users answered differently after kill -9, "
          "e.g. %s: %r -> %r" % (len(diff), len(before), diff[:1],
                                 before[diff[0]] if diff else None,
                                 after[diff[0]] if diff else None))
    eq(lookup_all(r, late, "late users again"), late_before,
       "late users after restart")

    # A clean restart (SIGTERM) keeps everything too.
    eq(r.kill(signal.SIGTERM), 0, "SIGTERM exit status")
    r.start()
    eq(r.backends(), backends_before, "backends after SIGTERM restart")
    sample = [u for u in names[::97] if u != forgotten]
    again = lookup_all(r, sample, "after SIGTERM restart")
    eq({u: again[u] for u in sample}, {u: after[u] for u in sample},
       "sample after SIGTERM restart")
    r.secrets_absent("k-crash-test")


rt.run(main)
