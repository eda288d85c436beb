"""Backends can be added, listed, shown, changed and deleted over HTTP; the
doveadm key is never echoed; a duplicate name is refused; a backend with
users is deleted only with ?force=1, and its users are then placed again by
the hash."""

import roosttest as rt
from roosttest import check, eq, error, status

KEY = "dovekey-" + "7f3a9c1e5b2d4086"


def main(t):
    r = t.roost()

    eq(r.backends(), [], "a fresh store has no backends")

    # Full object, out of name order.
    b2 = r.add_backend("b2", "127.0.0.12", ports={"imap": 1143, "doveadm": 8080},
                       doveadm={"url": "http://127.0.0.12:8080/doveadm/v1",
                                "api_key": KEY},
                       tag="", weight=200)
    eq(b2["name"], "b2", "POST answers the backend")
    eq(b2["host"], "127.0.0.12", "host")
    eq(b2["hostip"], "127.0.0.12", "hostip defaults to an IP literal host")
    eq(b2["weight"], 200, "weight")
    eq(b2["state"], "up", "default state")
    eq(b2["tag"], "", "default tag")
    eq(b2["ports"], {"imap": 1143, "pop3": 110, "lmtp": 24, "submission": 587,
                     "sieve": 4190, "doveadm": 8080},
       "given ports replace defaults, others keep them")
    eq(b2["doveadm"], {"url": "http://127.0.0.12:8080/doveadm/v1",
                       "api_key_set": True}, "doveadm: key shown only as set")
    eq(b2["users"], 0, "no users yet")
    check(isinstance(b2["created"], int) and b2["created"] > 1700000000,
          "created is a unix time: %r" % b2.get("created"))
    check(isinstance(b2["updated"], int) and b2["updated"] >= b2["created"],
          "updated is a unix time")

    # Minimal object: defaults; a host name gives no hostip.
    b1 = r.add_backend("b1", "mail1.example.com")
    eq(b1["hostip"], "", "no hostip for a host name")
    eq(b1["weight"], 100, "default weight")
    eq(b1["ports"], {"imap": 143, "pop3": 110, "lmtp": 24, "submission": 587,
                     "sieve": 4190, "doveadm": 0}, "default ports")
    eq(b1["doveadm"].get("api_key_set"), False, "no key set")
    check("api_key" not in b1["doveadm"], "api_key never echoed")
    a0 = r.add_backend("a0", "127.0.0.10", hostip="127.0.0.99", state="drain",
                       tag="gold")
    eq(a0["hostip"], "127.0.0.99", "explicit hostip wins")
    eq((a0["state"], a0["tag"]), ("drain", "gold"), "state and tag on POST")

    # List ordered by name, same objects as GET one.
    lst = r.backends()
    eq([b["name"] for b in lst], ["a0", "b1", "b2"], "list ordered by name")
    for b in lst:
        eq(r.backend(b["name"]), b, "GET one equals its list entry")
    eq(r.backend("b2"), b2, "GET answers what POST answered")

    # 409 on a duplicate name; the original is untouched.
    error(r.api("POST", "/v1/backends", {"name": "b2", "host": "10.9.9.9",
                                         "weight": 1}), 409, None,
          "duplicate backend")
    eq(r.backend("b2"), b2, "b2 unchanged after a refused duplicate")
    error(r.api("GET", "/v1/backends/nope"), 404, None, "unknown backend")
    error(r.api("PATCH", "/v1/backends/nope", {"weight": 5}), 404, None,
          "PATCH unknown backend")
    error(r.api("DELETE", "/v1/backends/nope"), 404, None,
          "DELETE unknown backend")

    # PATCH a subset: only those fields change.
    p = r.patch_backend("b2", weight=50, state="drain", ports={"pop3": 1110},
                        host="mail2.example.com")
    eq((p["weight"], p["state"], p["host"]), (50, "drain", "mail2.example.com"),
       "PATCH applied")
    eq(p["hostip"], "", "a host name in place of the IP clears hostip")
    eq(p["ports"]["imap"], 1143, "ports not named in PATCH are kept")
    eq(p["ports"]["pop3"], 1110, "port changed by PATCH")
    eq(p["doveadm"], {"url": "http://127.0.0.12:8080/doveadm/v1",
                      "api_key_set": True}, "doveadm kept")
    eq(p["created"], b2["created"], "created never changes")
    eq(r.backend("b2"), p, "GET shows the PATCH")
    error(r.api("PATCH", "/v1/backends/b2", {"name": "b9"}), 400, "name",
          "name is immutable")
    eq(r.backend("b2"), p, "refused rename changed nothing")
    error(r.api("GET", "/v1/backends/b9"), 404, None, "no b9 after rename try")
    # A GET body can be sent back as a PATCH (read-only fields ignored).
    body = dict(p)
    del body["name"]
    body["weight"] = 60
    p = status(r.api("PATCH", "/v1/backends/b2", body), 200,
               "PATCH with a GET body")
    eq(p["weight"], 60, "weight from GET-shaped PATCH")
    eq(p["doveadm"]["api_key_set"], True, "key kept by a GET-shaped PATCH")
    # Clearing the key.
    p = r.patch_backend("b2", doveadm={"api_key": ""})
    eq(p["doveadm"]["api_key_set"], False, "empty api_key clears it")
    p = r.patch_backend("b2", doveadm={"api_key": KEY + "x"}, state="up")
    eq(p["doveadm"]["api_key_set"], True, "key set again")

    # Delete a backend with no users.
    js = status(r.api("DELETE", "/v1/backends/a0"), 200, "delete a0")
    eq(js, {"deleted": "a0", "users_released": 0}, "delete answer")
    error(r.api("GET", "/v1/backends/a0"), 404, None, "a0 gone")

    # Users on b1 and b2 (both up, equal weights).
    r.patch_backend("b2", weight=100)
    where = {}
    for i in range(60):
        u = "user%02d@example.com" % i
        where[u] = r.lookup_ok(u)["backend"]
    on_b1 = sorted(u for u, b in where.items() if b == "b1")
    check(0 < len(on_b1) < 60, "both backends get users (b1 has %d of 60)" %
          len(on_b1))
    eq(r.backend("b1")["users"], len(on_b1), "b1 user count")

    # DELETE refused while users are assigned; nothing changes.
    before = r.backends()
    error(r.api("DELETE", "/v1/backends/b1"), 409, None,
          "delete with users, no force")
    error(r.api("DELETE", "/v1/backends/b1?force=0"), 409, None,
          "delete with users, force=0")
    eq(r.backends(), before, "refused delete changed nothing")
    for u in on_b1[:5]:
        eq(r.lookup_ok(u)["backend"], "b1", "user stays on b1 after refusal")

    # Forced: users released and placed again by the hash.
    js = status(r.api("DELETE", "/v1/backends/b1?force=1"), 200,
                "forced delete")
    eq(js, {"deleted": "b1", "users_released": len(on_b1)},
       "forced delete answer")
    error(r.api("GET", "/v1/backends/b1"), 404, None, "b1 gone")
    eq([b["name"] for b in r.backends()], ["b2"], "only b2 left")
    for u in on_b1:
        us = r.user(u)
        eq(us["assigned"], False, "%s released by forced delete" % u)
        eq(us["hashed"], "b2", "%s: the hash now says b2" % u)
    for u, b in where.items():
        eq(r.lookup_ok(u)["backend"], "b2", "%s placed again on b2" % u)
    eq(r.backend("b2")["users"], 60, "b2 has every user now")

    # Re-adding b1 does not move anyone.
    r.add_backend("b1", "127.0.0.11")
    for u in on_b1:
        eq(r.lookup_ok(u)["backend"], "b2", "%s not moved by re-adding b1" % u)

    r.secrets_absent(KEY, KEY + "x")


rt.run(main)
