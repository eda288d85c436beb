"""A lookup never moves a user: a tag that does not match the user's stored
pool gets 409 naming `tag` and changes nothing (the pin stays, the backend
stays, nothing is audited); a pin to a backend of another pool is refused
with 409 naming `backend`; only the admin API and failover change an
assignment."""

import roosttest as rt
from roosttest import eq, error


def assignment(r, user):
    """The stored assignment without the lookup time, which lookups move."""
    js = r.user(user)
    js.pop("last_lookup", None)
    return js


def main(t):
    r = t.roost()
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    r.add_backend("x1", "127.0.0.21", tag="x")

    # carol pinned to b2 (default pool).
    eq(r.api("PUT", "/v1/users/carol", {"backend": "b2"})[0], 200, "pin carol")
    audit = r.api("GET", "/v1/audit")[1]["entries"]
    before = assignment(r, "carol")

    # A lookup that names another pool: refused, carol untouched.
    js = error(r.lookup("carol", tag="x"), 409, "tag",
               "lookup with a tag other than carol's pool")
    eq(assignment(r, "carol"), before, "carol after the mismatched lookup")
    eq(r.lookup_ok("carol")["backend"], "b2", "plain lookup: still b2")
    eq(r.user("carol")["pinned"], True, "the pin survived")
    eq(r.api("GET", "/v1/audit")[1]["entries"], audit, "nothing audited")

    # dave placed in pool x; a lookup without the tag does not re-place him.
    eq(r.lookup_ok("dave", tag="x")["backend"], "x1", "dave in pool x")
    dave = assignment(r, "dave")
    error(r.lookup("dave"), 409, "tag", "dave looked up without his pool")
    eq(assignment(r, "dave"), dave, "dave unchanged")
    eq(r.lookup_ok("dave", tag="x")["backend"], "x1", "dave still on x1")

    # A pin across pools is refused and changes nothing.
    error(r.api("PUT", "/v1/users/carol", {"backend": "x1"}), 409, "backend",
          "pin carol to a backend of pool x")
    eq(assignment(r, "carol"), before, "carol after the refused pin")
    error(r.api("PUT", "/v1/users/dave", {"backend": "b1"}), 409, "backend",
          "pin dave to a backend of the default pool")
    eq(assignment(r, "dave"), dave, "dave after the refused pin")

    # A user with no assignment yet takes the pool of the backend pinned to.
    eq(r.api("PUT", "/v1/users/erin", {"backend": "x1"})[0], 200, "pin erin")
    eq(r.lookup_ok("erin", tag="x")["backend"], "x1", "erin in pool x")

    # Same pool, another backend: an admin pin moves the user (the API may).
    eq(r.api("PUT", "/v1/users/carol", {"backend": "b1"})[0], 200, "re-pin")
    eq(r.lookup_ok("carol")["backend"], "b1", "carol on b1 after the pin")

    # Failover still works: b1 down, carol goes elsewhere in her pool.
    r.patch_backend("b1", state="down")
    eq(r.lookup_ok("carol")["backend"], "b2", "carol failed over to b2")
    r.patch_backend("b1", state="up")
    eq(r.lookup_ok("carol")["backend"], "b2", "and stays on b2")

    # Survives a restart exactly.
    users = {u: assignment(r, u) for u in ("carol", "dave", "erin")}
    r.restart()
    for u, js in users.items():
        eq(assignment(r, u), js, "%s after kill -9" % u)


rt.run(main)
