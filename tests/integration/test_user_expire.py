"""user_expire (for shared storage, like the Director): an assignment idle
longer than user_expire falls back to the hash, one that keeps being looked
up stays, a pinned one never expires, and the new placement survives kill -9.
Takes a little over a minute (user_expire is at least 60 s)."""
# run.py: alongside (about a minute of waiting for user_expire)

import time

import roosttest as rt
from roosttest import check, eq, status

EXPIRE = 60


def main(t):
    r = t.roost(user_expire=EXPIRE)
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")

    # Users placed while b1 is down sit on b2; pick ones the hash sends to
    # b1 once it is up, so falling back to the hash is visible.
    r.patch_backend("b1", state="down")
    cands = ["exp%03d" % i for i in range(60)]
    for u in cands:
        eq(r.lookup_ok(u)["backend"], "b2", "placed on b2 while b1 is down")
    r.patch_backend("b1", state="up")
    off = [u for u in cands if r.user(u)["hashed"] == "b1"]
    check(len(off) >= 6, "enough users off the hash (%d)" % len(off))
    idle, busy, pinned = off[0:2], off[2:4], off[4:6]
    print("idle %s, busy %s, pinned %s" % (idle, busy, pinned))
    for u in pinned:
        status(r.api("PUT", "/v1/users/" + u, {"backend": "b2"}), 200,
               "pin " + u)
    for u in idle + busy + pinned:
        eq(r.lookup_ok(u)["backend"], "b2", "%s still on b2 before expiry" % u)

    # Keep `busy` alive, leave `idle` alone, for longer than user_expire.
    t0 = time.monotonic()
    while time.monotonic() - t0 < EXPIRE + 3:
        time.sleep(min(15, EXPIRE + 3 - (time.monotonic() - t0)))
        for u in busy:
            eq(r.lookup_ok(u)["backend"], "b2", "%s kept while busy" % u)

    for u in idle:
        eq(r.lookup_ok(u)["backend"], "b1",
           "%s idle past user_expire falls back to the hash" % u)
    for u in busy:
        eq(r.lookup_ok(u)["backend"], "b2", "%s looked up, not expired" % u)
    for u in pinned:
        eq(r.lookup_ok(u)["backend"], "b2", "%s pinned, never expires" % u)

    # A crash loses no routing: a user active seconds before kill -9 is
    # not idle after the restart (DESIGN invariant 2), however late the
    # daemon writes lookup times to its store.
    r.restart()
    for u in idle:
        eq(r.lookup_ok(u)["backend"], "b1", "%s re-placement kept" % u)
    for u in pinned:
        eq(r.lookup_ok(u)["backend"], "b2", "pinned %s kept across kill -9"
           % u)
    for u in busy:
        eq(r.lookup_ok(u)["backend"], "b2", "%s, active 1 s before kill -9, "
           "still on b2 after the restart" % u)


rt.run(main)
