"""User names must be UTF-8: a name that is not (bad bytes, overlong forms,
surrogates) gets 400 naming `user` on every endpoint and stores nothing,
every answer is valid JSON, names in UTF-8 work, and paging through users
and the audit is exact even over rows an older roostd stored with bytes
that are not UTF-8.  Every endpoint reads its query string the same way."""

import sqlite3
import time

import roosttest as rt
from roosttest import check, eq, error

BAD = ["%FFx", "%FEx", "a%C0%AFb", "%ED%A0%80x", "x%F4%90%80%80",
       "%E2%82", "caf%E9"]


def main(t):
    r = t.roost()
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    audit0 = r.api("GET", "/v1/audit")[1]

    for raw in BAD:
        error(r.api("GET", "/v1/lookup?user=%s&protocol=imap" % raw), 400,
              "user", "lookup of %s" % raw)
        error(r.api("GET", "/v1/users/" + raw), 400, "user",
              "GET user %s" % raw)
        error(r.api("PUT", "/v1/users/" + raw, {"backend": "b1"}), 400,
              "user", "PUT user %s" % raw)
        error(r.api("DELETE", "/v1/users/" + raw), 400, "user",
              "DELETE user %s" % raw)
    eq(r.all_users(), [], "no assignment from a refused name")
    eq(r.api("GET", "/v1/audit")[1], audit0, "no audit from a refused name")

    # UTF-8 names go through and come back intact.
    for name in ("jörg@example.com", "用户@example.com", "a+b@example.com"):
        js = r.lookup_ok(name)
        eq(js["user"], name.lower(), "lookup answer names %s" % name)
        eq(r.user(name)["assigned"], True, "%s assigned" % name)
    eq(r.api("PUT", "/v1/users/" + rt.q("zoë"), {"backend": "b2"})[0], 200,
       "pin a UTF-8 name")
    eq(r.lookup_ok("zoë")["backend"], "b2", "pinned UTF-8 name routed")

    # One query parser everywhere: '+' is a '+', a repeated or badly
    # encoded parameter is refused and named.
    eq(r.lookup_ok("c+d")["user"], "c+d", "lookup keeps +")
    eq(r.api("GET", "/v1/users/c+d")[1]["assigned"], True, "path keeps +")
    for path, field in (("/v1/users?limit=5&limit=6", "limit"),
                        ("/v1/users?limit=%ZZ", "limit"),
                        ("/v1/audit?before=1&before=2", "before"),
                        ("/v1/users/c+d?tag=a&tag=b", "tag"),
                        ("/v1/backends/b1?force=1&force=1", "force")):
        method = "DELETE" if "force" in path else "GET"
        error(r.api(method, path), 400, field, path)
    eq(r.backend("b1")["name"], "b1", "refused delete left b1")

    # Rows that an older roostd stored with bytes that are not UTF-8.
    r.kill()
    db = sqlite3.connect(r.db_path)
    bad_keys = [b"m\xffone", b"m\xfe\xfftwo", b"mz\xc0\xaf"]
    for k in bad_keys:
        db.execute("INSERT INTO users(user, backend, tag, pinned, since, "
                   "last_lookup) VALUES (CAST(? AS TEXT), 'b1', '', 0, 1, 0)",
                   (k,))
        db.execute("INSERT INTO audit(at, actor, action, subject, detail) "
                   "VALUES (1, 'admin', 'user.pin', CAST(? AS TEXT), "
                   "CAST(? AS TEXT))", (k, b'{"backend":"\xff"}'))
    db.commit()
    rows = db.execute("SELECT count(*) FROM users").fetchone()[0]
    audits = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    db.close()
    r.start()
    for limit in (1, 2, 3, 1000):
        users = r.all_users(limit=limit)
        eq(len(users), rows, "users listed %d a page" % limit)
        eq(len({u["user_hex"] if "user_hex" in u else u["user"]
                for u in users}), rows, "distinct rows at %d a page" % limit)
    shown = {bytes.fromhex(u["user_hex"]) for u in r.all_users()
             if "user_hex" in u}
    eq(shown, set(bad_keys), "rows that are not UTF-8 carry user_hex")
    for limit in (1, 2, 7):
        walked, before = [], None
        for _ in range(1000):
            path = "/v1/audit?limit=%d" % limit
            if before is not None:
                path += "&before=%d" % before
            st, page = r.api("GET", path)
            eq(st, 200, path)
            walked.extend(page["entries"])
            before = page["next_before"]
            if before is None:
                break
        eq(len(walked), audits, "audit entries at %d a page" % limit)
    check(r.backend("b1")["users"] >= 3, "b1 counts the legacy rows")
    check(r.alive(), "roostd alive")


rt.run(main)
