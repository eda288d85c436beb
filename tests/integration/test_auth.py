"""Admin endpoints need the admin bearer token (401 without it or with another
scheme, 403 with a wrong one); /v1/health is open; /v1/lookup is open unless
lookup_token_file is set, and then takes the lookup or the admin token.
Neither token ever appears in roostd's log."""

import base64

import roosttest as rt
from roosttest import check, eq, error, status

ADMIN = [
    ("GET", "/v1/backends", None),
    ("POST", "/v1/backends", {"name": "x1", "host": "127.0.0.50"}),
    ("GET", "/v1/backends/b1", None),
    ("PATCH", "/v1/backends/b1", {"weight": 1}),
    ("DELETE", "/v1/backends/b1?force=1", None),
    ("GET", "/v1/users", None),
    ("GET", "/v1/users/alice", None),
    ("PUT", "/v1/users/alice", {"backend": "b1"}),
    ("DELETE", "/v1/users/alice", None),
    ("GET", "/v1/status", None),
    ("GET", "/v1/audit", None),
]


def refused(r):
    """Every admin endpoint refuses every wrong credential, and nothing
    changes."""
    before = r.backends()
    audit_before = status(r.api("GET", "/v1/audit"), 200, "audit")
    basic = "Basic " + base64.b64encode(
        ("admin:" + r.admin_token).encode()).decode()
    for method, path, body in ADMIN:
        what = "%s %s" % (method, path)
        error(r.api(method, path, body, token=None), 401, None,
              what + " without Authorization")
        error(r.api(method, path, body, token=None,
                    headers={"Authorization": basic}), 401, None,
              what + " with Basic scheme")
        error(r.api(method, path, body, token=None,
                    headers={"Authorization": r.admin_token}), 401, None,
              what + " with a bare token, no scheme")
        error(r.api(method, path, body, token="wrong"), 403, None,
              what + " with a wrong token")
        error(r.api(method, path, body, token=r.admin_token + "x"), 403, None,
              what + " with the token plus a byte")
        error(r.api(method, path, body, token=r.admin_token[:-1]), 403, None,
              what + " with a prefix of the token")
        # The lookup token is not an admin token.
        error(r.api(method, path, body, token="lookup"), 403, None,
              what + " with the lookup token")
    eq(r.backends(), before, "refused admin requests changed nothing")
    eq(status(r.api("GET", "/v1/audit"), 200, "audit"), audit_before,
       "refused admin requests left no audit entry")
    js = status(r.api("GET", "/v1/health", token=None), 200, "health, no auth")
    eq(js.get("status"), "ok", "health answer")
    status(r.api("GET", "/v1/health", token="wrong"), 200,
           "health with a wrong token is still open")


def main(t):
    # Lookups open (no lookup_token_file); debug logging to catch any leak.
    r = t.roost(log_level="debug")
    status(r.api("GET", "/v1/backends"), 200, "admin token works")
    r.add_backend("b1", "127.0.0.11")
    refused(r)
    for tok in (None, "wrong", "lookup", "admin"):
        js = status(r.lookup("alice", token=tok), 200,
                    "open lookup with token %r" % tok)
        eq(js["backend"], "b1", "lookup answer")

    # The same store, lookups now need a token.
    r.kill()
    r.write_config(lookup_token=True, log_level="debug")
    r.start()
    refused(r)
    error(r.lookup("alice", token=None), 401, None, "lookup without a token")
    basic = "Basic " + base64.b64encode(
        b"x:" + r.lookup_token.encode()).decode()
    error(r.api("GET", "/v1/lookup?user=alice&protocol=imap", token=None,
                headers={"Authorization": basic}), 401, None,
          "lookup with Basic scheme")
    error(r.lookup("alice", token="wrong"), 403, None,
          "lookup with a wrong token")
    error(r.lookup("alice", token=r.lookup_token + "x"), 403, None,
          "lookup with the token plus a byte")
    eq(r.lookup_ok("alice", token="lookup")["backend"], "b1",
       "lookup with the lookup token")
    eq(r.lookup_ok("alice", token="admin")["backend"], "b1",
       "lookup with the admin token")
    # A refused lookup does not place anyone.
    error(r.lookup("bob", token="wrong"), 403, None, "refused lookup of bob")
    eq(r.user("bob")["assigned"], False, "refused lookup placed nobody")

    # Some traffic that could be logged, then search the log.
    for i in range(20):
        r.lookup("user%d" % i, token="lookup")
        r.api("GET", "/v1/status", token="wrong")
    check(r.alive(), "roostd still running")
    log = r.log()
    check(log.strip() != "", "roostd wrote a log")
    check(r.admin_token not in log, "admin token in roostd's log")
    check(r.lookup_token not in log, "lookup token in roostd's log")
    r.secrets_absent(r.admin_token, r.lookup_token)


rt.run(main)
