"""The user counts an admin reads in status and on each backend match the
map itself after every kind of change: new users, failover re-placement, a
pin, a forget, a forced backend removal, and kill -9 with a restart."""

import roosttest as rt
from roosttest import eq, q, status


def check_counts(r, what):
    """Per-backend counts from /v1/status against the listed map."""
    js = status(r.api("GET", "/v1/status"), 200, "status")
    listed = {}
    for u in r.all_users():
        listed[u["backend"]] = listed.get(u["backend"], 0) + 1
    counted = {b["name"]: b["users"] for b in js["backends"]}
    eq(counted, {b: listed.get(b, 0) for b in counted},
       "%s: status counts match the map" % what)
    eq(js["users"], sum(listed.values()), "%s: total users" % what)
    for b in counted:
        eq(r.backend(b)["users"], counted[b],
           "%s: GET /v1/backends/%s agrees" % (what, b))
    return counted


def main(t):
    r = t.roost()
    for i in (1, 2, 3):
        r.add_backend("b%d" % i, "127.0.0.1%d" % i)
    users = ["count%03d" % i for i in range(300)]
    for u in users:
        r.lookup_ok(u)
    c = check_counts(r, "after 300 lookups")
    eq(sum(c.values()), 300, "every user counted once")

    # Failover: b1's users are placed again on their next lookup.
    r.patch_backend("b1", state="down")
    for u in users:
        r.lookup_ok(u)
    eq(check_counts(r, "after failover")["b1"], 0, "nobody left on b1")
    r.patch_backend("b1", state="up")

    victim = users[0]
    was = r.user(victim)["backend"]
    to = "b1"
    before = check_counts(r, "before the pin")
    status(r.api("PUT", "/v1/users/" + q(victim), {"backend": to}), 200,
           "pin")
    after = check_counts(r, "after the pin")
    eq((after[was], after[to]), (before[was] - 1, before[to] + 1),
       "the pin moved one user's count")
    status(r.api("DELETE", "/v1/users/" + q(victim)), 200, "forget")
    eq(check_counts(r, "after the forget")[to], before[to],
       "the forget took one user's count")

    gone = check_counts(r, "before removal")["b2"]
    js = status(r.api("DELETE", "/v1/backends/b2?force=1"), 200, "remove b2")
    eq(js["users_released"], gone, "released what status counted")
    check_counts(r, "after removing b2")
    # A new backend in the freed slot starts from zero.
    r.add_backend("b4", "127.0.0.14")
    eq(r.backend("b4")["users"], 0, "a new backend has no users")

    rc = r.kill()
    eq(rc != 0, True, "kill -9")
    r.start()
    check_counts(r, "after kill -9 and restart")


rt.run(main)
