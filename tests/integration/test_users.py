"""The user map as an admin sees it: show (unassigned, then assigned by a
lookup), pin (the next lookup goes to the pinned backend; unknown backend 404,
down backend 409), forget, and the paginated map with a backend filter."""

import roosttest as rt
from roosttest import check, eq, error, q, status

LIST_KEYS = {"user", "assigned", "backend", "pinned", "tag", "since",
             "last_lookup"}


def main(t):
    r = t.roost()
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    r.add_backend("b3", "127.0.0.13", state="down")

    # -- show, before and after a lookup.
    u = r.user("Bob@Example.com")
    eq(u["user"], "bob@example.com", "user show normalizes")
    eq(u["assigned"], False, "bob not assigned yet")
    for k in ("backend", "since", "last_lookup"):
        eq(u[k], None, "%s of an unassigned user" % k)
    eq(u["pinned"], False, "not pinned")
    eq(u["tag"], "", "default tag")
    check(u["hashed"] in ("b1", "b2"), "hashed is an up backend: %r" % u)
    check(u["replica"] in ("b1", "b2") and u["replica"] != u["hashed"],
          "replica is the other up backend: %r" % u)
    eq(r.user("bob@example.com"), u, "show twice, same answer")
    eq(r.all_users(), [], "show assigns nobody")

    js = r.lookup_ok("bob@example.com")
    eq(js["backend"], u["hashed"], "lookup goes where hashed said")
    v = r.user("bob@example.com")
    eq((v["assigned"], v["backend"], v["hashed"], v["pinned"]),
       (True, js["backend"], u["hashed"], False), "bob assigned")
    check(isinstance(v["since"], int) and v["since"] > 1700000000,
          "since is a unix time: %r" % v["since"])
    check(v["last_lookup"] is None or (isinstance(v["last_lookup"], int) and
                                       v["last_lookup"] >= v["since"]),
          "last_lookup: %r" % v["last_lookup"])
    eq(v["replica"], "b2" if v["backend"] == "b1" else "b1", "replica")

    # -- pin to the other backend.
    other = "b2" if v["backend"] == "b1" else "b1"
    p = status(r.api("PUT", "/v1/users/bob@example.com", {"backend": other}),
               200, "pin bob")
    eq((p["user"], p["assigned"], p["backend"], p["pinned"]),
       ("bob@example.com", True, other, True), "pin answer")
    eq(r.lookup_ok("bob@example.com")["backend"], other,
       "next lookup goes to the pinned backend")
    eq(r.lookup_ok("BOB@example.com", protocol="lmtp")["backend"], other,
       "every protocol goes to the pinned backend")
    w = r.user("bob@example.com")
    eq((w["backend"], w["pinned"]), (other, True), "show after pin")
    eq(w["hashed"], u["hashed"], "the hash did not change")

    # Pin refusals change nothing.
    js = error(r.api("PUT", "/v1/users/bob@example.com", {"backend": "nope"}),
               404, "backend", "pin to an unknown backend")
    error(r.api("PUT", "/v1/users/bob@example.com", {"backend": "b3"}), 409,
          None, "pin to a down backend")
    eq(r.user("bob@example.com"), r.user("bob@example.com"), "stable")
    x = r.user("bob@example.com")
    eq((x["backend"], x["pinned"]), (other, True), "refused pins kept the pin")
    eq(r.lookup_ok("bob@example.com")["backend"], other, "still pinned")
    # Pin of a user nobody looked up yet assigns them.
    p = status(r.api("PUT", "/v1/users/" + q("Dave"), {"backend": "b2"}), 200,
               "pin an unassigned user")
    eq((p["user"], p["backend"], p["pinned"]), ("dave", "b2", True),
       "pinned dave")
    eq(r.lookup_ok("dave")["backend"], "b2", "dave's lookup follows the pin")
    # A drained backend can take a pin (it is not down).
    r.patch_backend("b1", state="drain")
    status(r.api("PUT", "/v1/users/erin", {"backend": "b1"}), 200,
           "pin to a draining backend")
    eq(r.lookup_ok("erin")["backend"], "b1", "erin on the draining backend")
    r.patch_backend("b1", state="up")

    # -- forget.
    js = status(r.api("DELETE", "/v1/users/bob@example.com"), 200,
                "forget bob")
    eq(js, {"forgotten": "bob@example.com"}, "forget answer")
    y = r.user("bob@example.com")
    eq((y["assigned"], y["backend"], y["pinned"]), (False, None, False),
       "bob forgotten")
    error(r.api("DELETE", "/v1/users/bob@example.com"), 404, None,
          "forget twice")
    error(r.api("DELETE", "/v1/users/never-seen"), 404, None,
          "forget an unknown user")
    eq(r.lookup_ok("bob@example.com")["backend"], u["hashed"],
       "after forget the hash places bob again")
    eq(r.user("bob@example.com")["pinned"], False, "no longer pinned")

    # -- the map: 250 more users, pages of 100.
    names = ["m%03d" % i for i in range(250)]
    placed = {n: r.lookup_ok(n)["backend"] for n in names}
    expect = dict(placed)
    expect.update({"bob@example.com": u["hashed"], "dave": "b2", "erin": "b1"})

    pages, cursor, seen = [], None, []
    for _ in range(10):
        path = "/v1/users?limit=100"
        if cursor is not None:
            path += "&cursor=" + q(cursor)
        js = status(r.api("GET", path), 200, "GET " + path)
        pages.append(len(js["users"]))
        seen.extend(js["users"])
        cursor = js["next_cursor"]
        if cursor is None:
            break
        check(isinstance(cursor, str) and cursor != "",
              "next_cursor is a string: %r" % cursor)
    eq(pages, [100, 100, 53], "page sizes for 253 users at limit 100")
    got = {x["user"]: x["backend"] for x in seen}
    eq(len(got), len(seen), "no user twice across pages")
    eq(got, expect, "the map holds exactly every assigned user")
    eq([x["user"] for x in seen], sorted(x["user"] for x in seen),
       "the map is ordered by user")
    eq({x["user"] for x in seen if x["pinned"]}, {"dave", "erin"},
       "pinned users in the map")
    # Default limit holds them all in one page.
    js = status(r.api("GET", "/v1/users"), 200, "map, default limit")
    eq((len(js["users"]), js["next_cursor"]), (253, None), "default page")

    # Backend filter, with pages of 100 too.
    for b in ("b1", "b2"):
        mine = sorted(n for n, bb in expect.items() if bb == b)
        got_b = [x["user"] for x in r.all_users(backend=b, limit=100)]
        eq(got_b, mine, "map of %s" % b)
        eq(r.backend(b)["users"], len(mine), "user count of %s" % b)
    eq(r.all_users(backend="b3"), [], "map of an empty backend")
    js = status(r.api("GET", "/v1/users?backend=b1&limit=1"), 200,
                "limit 1")
    eq(len(js["users"]), 1, "limit 1 gives one user")
    check(js["next_cursor"] is not None, "limit 1 has a next page")

    # Forgetting shrinks the map.
    for n in names[:50]:
        status(r.api("DELETE", "/v1/users/" + n), 200, "forget " + n)
    eq(len(r.all_users(limit=100)), 203, "map after forgetting 50")
    st = status(r.api("GET", "/v1/status"), 200, "status")
    eq(st["users"], 203, "status user count")

    # Map entries are user objects without replica/hashed (checked last so
    # that a missing field does not hide the behaviour above).
    for x in seen:
        check(LIST_KEYS <= set(x.keys()) and
              not {"hashed", "replica"} & set(x.keys()),
              "map entry fields of %s: %r" % (x["user"], sorted(x.keys())))
        eq(x["assigned"], True, "map entries are assigned")


rt.run(main)
