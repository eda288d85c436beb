"""What a Dovecot proxy sees from GET /v1/lookup: the documented fields (port
as a string), a stable answer, the right port per protocol, 503 no_backend
when nothing is eligible, drain and down semantics with sticky failover, tag
pools, user name normalization, and no surprise moves when a backend is
added."""

import roosttest as rt
from roosttest import check, eq, error

PROTO_PORTS = {"imap": 1143, "pop3": 1110, "lmtp": 1024, "submission": 1587,
               "sieve": 14190, "doveadm": 18080}


def users(prefix, n):
    return ["%s%03d@example.com" % (prefix, i) for i in range(n)]


def place(r, names, **kw):
    return {u: r.lookup_ok(u, **kw)["backend"] for u in names}


def main(t):
    r = t.roost(username_format="%Lu", master_user_separator="*")

    # -- nothing to answer with.
    js = error(r.lookup("alice"), 503, None, "lookup with no backends")
    eq(js.get("reason"), "no_backend", "reason with no backends")
    eq(r.user("alice")["assigned"], False, "503 assigned nobody")

    # -- one backend: every field, replica null, port a string.
    r.add_backend("b1", "b1.example.com", hostip="127.0.0.11",
                  ports=PROTO_PORTS)
    js = r.lookup_ok("Alice@Example.COM")
    eq(js, {"user": "alice@example.com", "backend": "b1",
            "host": "b1.example.com", "hostip": "127.0.0.11", "port": "1143",
            "tls": "no", "replica": None}, "lookup answer with a single backend")
    eq(r.lookup_ok("alice@example.com"), js, "same answer twice")
    for proto, port in PROTO_PORTS.items():
        a = r.lookup_ok("alice@example.com", protocol=proto)
        eq(a["port"], str(port), "%s port as a string" % proto)
        eq(a["backend"], "b1", "%s backend" % proto)
    # A protocol the backend does not serve.
    r.patch_backend("b1", ports={"pop3": 0})
    js = error(r.lookup("alice@example.com", protocol="pop3"), 503, None,
               "pop3 on a backend with pop3 port 0")
    eq(js.get("reason"), "no_port", "reason when the port is 0")
    eq(r.lookup_ok("alice@example.com")["backend"], "b1",
       "imap still served")
    r.patch_backend("b1", ports={"pop3": 1110})
    # hostip "" when the backend has none.
    r.add_backend("h1", "mail-h1.example.com", tag="named")
    js = r.lookup_ok("carol", tag="named")
    eq((js["host"], js["hostip"], js["port"]),
       ("mail-h1.example.com", "", "143"), "backend without hostip")

    # -- two backends: replica is the other one; users spread over both.
    r.add_backend("b2", "127.0.0.12")
    first = place(r, users("u", 200))
    again = place(r, users("u", 200))
    eq(again, first, "the same 200 answers a second time")
    n1 = sum(1 for b in first.values() if b == "b1")
    check(20 < n1 < 180, "equal weights share users (b1 has %d of 200)" % n1)
    for u in users("u", 10):
        js = r.lookup_ok(u)
        eq(js["replica"], "b2" if js["backend"] == "b1" else "b1",
           "replica of %s" % u)
    eq(r.backend("b1")["users"] + r.backend("b2")["users"],
       200 + 1, "user counts (200 + alice)")

    # -- adding a backend moves nobody; it takes a share of new users.
    r.add_backend("b3", "127.0.0.13", weight=1000)
    eq(place(r, users("u", 200)), first, "adding b3 moved nobody")
    fresh = place(r, users("new", 100))
    n3 = sum(1 for b in fresh.values() if b == "b3")
    check(n3 >= 50, "heavy new backend takes most new users (%d of 100)" % n3)

    # -- weight 0 takes no new users but keeps its own.
    r.patch_backend("b3", weight=0)
    eq(place(r, users("new", 100)), fresh, "weight 0 keeps its users")
    check("b3" not in place(r, users("w0-", 100)).values(),
          "weight 0 backend got a new user")
    r.patch_backend("b3", weight=100)

    # -- drain: keeps existing users, gets no new ones.
    r.patch_backend("b1", state="drain")
    eq(place(r, users("u", 200)), first, "drain keeps every existing user")
    newer = place(r, users("drain", 100))
    check("b1" not in newer.values(), "a draining backend got a new user")
    r.patch_backend("b1", state="up")

    # -- down: its users fail over, and stay after it comes back.
    on_b2 = [u for u, b in first.items() if b == "b2"]
    r.patch_backend("b2", state="down")
    moved = place(r, on_b2)
    check("b2" not in moved.values(), "a down backend still answered")
    for u in on_b2[:5]:
        eq(r.user(u)["backend"], moved[u], "failover assignment stored")
    r.patch_backend("b2", state="up")
    eq(place(r, on_b2), moved, "failover choice sticks after b2 is up")
    check("b2" not in place(r, on_b2).values(), "nobody moved back to b2")
    # All down: 503 no_backend, also for known users.
    for b in ("b1", "b2", "b3"):
        r.patch_backend(b, state="down")
    for u in (users("u", 3) + ["brand-new-user"]):
        js = error(r.lookup(u), 503, None, "lookup with every backend down")
        eq(js.get("reason"), "no_backend", "reason with every backend down")
    eq(r.user("brand-new-user")["assigned"], False, "503 assigned nobody")
    for b in ("b1", "b2", "b3"):
        r.patch_backend(b, state="up")

    # -- tag pools.
    r.add_backend("g1", "127.0.0.21", tag="gold")
    r.add_backend("g2", "127.0.0.22", tag="gold")
    gold = place(r, users("gold", 60), tag="gold")
    eq(set(gold.values()), {"g1", "g2"}, "gold users only (and both) on gold")
    for u in users("gold", 3):
        js = r.lookup_ok(u, tag="gold")
        check(js["replica"] in ("g1", "g2") and js["replica"] != js["backend"],
              "gold replica is the other gold backend: %r" % js)
    plain = place(r, users("plain", 60))
    check(not set(plain.values()) & {"g1", "g2", "h1"},
          "untagged users on tagged backends: %r" % set(plain.values()))
    js = error(r.lookup("x", tag="silver"), 503, None, "tag with no backends")
    eq(js.get("reason"), "no_backend", "reason for an empty pool")
    for b in ("g1", "g2"):
        r.patch_backend(b, state="down")
    js = error(r.lookup("gold000@example.com", tag="gold"), 503, None,
               "gold pool all down")
    eq(js.get("reason"), "no_backend", "gold pool all down: reason")
    # ... and a gold user never lands outside gold.
    for b in ("g1", "g2"):
        r.patch_backend(b, state="up")
    eq(place(r, users("gold", 60), tag="gold"), gold,
       "gold users back where they were")

    # -- username_format %Lu and master_user_separator.
    a = r.lookup_ok("Mixed.Case@Example.com")
    eq(a["user"], "mixed.case@example.com", "%Lu lower-cases the user")
    eq(r.lookup_ok("mixed.case@example.com"), a, "same user, lower case")
    eq(r.lookup_ok("MIXED.CASE@EXAMPLE.COM"), a, "same user, upper case")
    m = r.lookup_ok("Mixed.Case@Example.com*masteradmin")
    eq(m, a, "master user part cut off")
    eq(r.user("MIXED.case@example.com")["backend"], a["backend"],
       "user show normalizes too")
    listed = [u["user"] for u in r.all_users()]
    check("mixed.case@example.com" in listed and
          not any("Mixed" in u or "*" in u for u in listed),
          "only normalized names in the map")
    js = error(r.lookup("*master"), 400, "user",
               "empty user after the master part is cut")

    # -- username_format %u keeps case; no separator configured.
    r2 = t.roost(username_format="%u")
    r2.add_backend("b1", "127.0.0.11")
    eq(r2.lookup_ok("Alice")["user"], "Alice", "%u keeps case")
    eq(r2.lookup_ok("alice")["user"], "alice", "%u: another user")
    eq(r2.lookup_ok("alice*x")["user"], "alice*x",
       "no master_user_separator: the name is kept whole")
    eq(len(r2.all_users()), 3, "three distinct users with %u")

    # -- the default is %Lu.
    r3 = t.roost()
    r3.add_backend("b1", "127.0.0.11")
    eq(r3.lookup_ok("BoB")["user"], "bob", "default username_format is %Lu")


rt.run(main)
