"""Bad input gets a 4xx JSON error naming the field, the daemon keeps
running, and a rejected request changes nothing: oversized bodies (413),
unknown paths (404), wrong methods (405 with Allow), malformed JSON, wrong
types, unknown fields, over-long names and control characters (400)."""

import socket

import roosttest as rt
from roosttest import check, eq, error, q, status

MAX_BODY = 64 * 1024


def snapshot(r):
    return (r.backends(), r.all_users(),
            status(r.api("GET", "/v1/audit"), 200, "audit"))


def main(t):
    r = t.roost()
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    r.lookup_ok("alice")
    r.lookup_ok("bob")
    base = snapshot(r)

    def unchanged(what):
        check(r.alive(), "roostd died after: " + what)
        eq(snapshot(r), base, "state after rejected request (%s)" % what)

    # -- body size.  Exactly 64 KiB is allowed, one byte more is not.
    head = b'{"name": "big", "host": "127.0.0.99"'
    exact = head + b" " * (MAX_BODY - len(head) - 1) + b"}"
    eq(len(exact), MAX_BODY, "test body size")
    over = head + b" " * (MAX_BODY - len(head)) + b"}"
    eq(len(over), MAX_BODY + 1, "test body size")
    error(r.api("POST", "/v1/backends", raw=over), 413, None,
          "POST of 64 KiB + 1")
    unchanged("64 KiB + 1 body")
    error(r.api("PATCH", "/v1/backends/b1",
                raw=b'{"weight": 5' + b" " * MAX_BODY + b"}"), 413, None,
          "PATCH over 64 KiB")
    unchanged("PATCH over 64 KiB")
    big = status(r.api("POST", "/v1/backends", raw=exact), 201,
                 "POST of exactly 64 KiB")
    eq(big["name"], "big", "64 KiB body parsed")
    status(r.api("DELETE", "/v1/backends/big"), 200, "delete big")
    base = snapshot(r)

    # -- unknown paths and wrong methods.
    for path in ("/", "/v1", "/v1/", "/v1/nope", "/v2/backends",
                 "/v1/backends/b1/extra", "/v1/users/alice/x",
                 "/v1/lookupx?user=a&protocol=imap", "/v1/healthz"):
        error(r.api("GET", path), 404, None, "GET " + path)
    unchanged("unknown paths")
    for method, path in (("DELETE", "/v1/backends"), ("PUT", "/v1/backends"),
                         ("POST", "/v1/backends/b1"), ("PUT", "/v1/backends/b1"),
                         ("POST", "/v1/lookup?user=a&protocol=imap"),
                         ("DELETE", "/v1/lookup?user=a&protocol=imap"),
                         ("PUT", "/v1/health"), ("POST", "/v1/status"),
                         ("DELETE", "/v1/audit"), ("POST", "/v1/users"),
                         ("PATCH", "/v1/users/alice")):
        st, hdrs, js = r.api_h(method, path, raw=b"{}")
        error((st, js), 405, None, "%s %s" % (method, path))
        allow = [m.strip().upper() for m in hdrs.get("allow", "").split(",")]
        check(method not in allow and len([m for m in allow if m]) > 0,
              "%s %s: 405 needs an Allow header without %s: %r" %
              (method, path, method, hdrs.get("allow")))
    st, hdrs, js = r.api_h("DELETE", "/v1/backends")
    check("GET" in hdrs.get("allow", "") and "POST" in hdrs.get("allow", ""),
          "Allow of /v1/backends names GET and POST: %r" % hdrs.get("allow"))
    unchanged("wrong methods")

    # -- malformed and non-object JSON.
    for raw in (b'{"name": "b3", "host": "127.0.0.13"', b"{name: b3}", b"",
                b"nul\x00l", b'{"name": "b3"} {"x": 1}', b"\xff\xfe{}",
                b'{"name": "b3", "host": "127.0.0.13",}'):
        error(r.api("POST", "/v1/backends", raw=raw), 400, "body",
              "malformed JSON %r" % raw[:40])
    for raw in (b"[]", b'"b3"', b"42", b"null", b"true"):
        error(r.api("POST", "/v1/backends", raw=raw), 400, "body",
              "JSON that is not an object: %r" % raw)
        error(r.api("PATCH", "/v1/backends/b1", raw=raw), 400, "body",
              "PATCH with JSON that is not an object: %r" % raw)
        error(r.api("PUT", "/v1/users/alice", raw=raw), 400, "body",
              "PUT user with JSON that is not an object: %r" % raw)
    error(r.api("PATCH", "/v1/backends/b1", raw=b'{"weight": 5'), 400,
          "body", "PATCH with malformed JSON")
    error(r.api("PUT", "/v1/users/alice", raw=b'{"backend": '), 400, "body",
          "PUT user with malformed JSON")
    unchanged("malformed JSON")

    # -- wrong types and values, each naming its field.
    good = {"name": "b3", "host": "127.0.0.13"}
    bad = [
        ({"weight": "x"}, "weight"),
        ({"weight": 1001}, "weight"),
        ({"weight": -1}, "weight"),
        ({"weight": 1.5}, "weight"),
        ({"weight": True}, "weight"),
        ({"state": "sideways"}, "state"),
        ({"state": 1}, "state"),
        ({"ports": {"imap": 70000}}, "ports.imap"),
        ({"ports": {"pop3": -1}}, "ports.pop3"),
        ({"ports": {"lmtp": "24"}}, "ports.lmtp"),
        ({"ports": 143}, "ports"),
        ({"host": 5}, "host"),
        ({"host": "bad host!"}, "host"),
        ({"host": "h" * 254}, "host"),
        ({"hostip": "not-an-ip"}, "hostip"),
        ({"hostip": "300.1.1.1"}, "hostip"),
        ({"tag": "bad tag"}, "tag"),
        ({"tag": "t" * 65}, "tag"),
        ({"tag": ".hidden"}, "tag"),
        ({"doveadm": {"url": "ftp://x/"}}, "doveadm.url"),
        ({"doveadm": {"url": 1}}, "doveadm.url"),
        ({"doveadm": {"api_key": 7}}, "doveadm.api_key"),
        ({"doveadm": {"api_key": "k" * 1025}}, "doveadm.api_key"),
        ({"doveadm": "x"}, "doveadm"),
        ({"colour": "blue"}, "colour"),
    ]
    for extra, field in bad:
        body = dict(good)
        body.update(extra)
        error(r.api("POST", "/v1/backends", body), 400, field,
              "POST with %r" % extra)
        # The same on PATCH, together with a valid change that must not
        # be applied (no partial write).
        body = {"weight": 7}
        body.update(extra)
        error(r.api("PATCH", "/v1/backends/b1", body), 400, field,
              "PATCH with %r" % extra)
    error(r.api("POST", "/v1/backends", {"host": "127.0.0.13"}), 400, "name",
          "POST without name")
    error(r.api("POST", "/v1/backends", {"name": "b3"}), 400, "host",
          "POST without host")
    unchanged("wrong types and unknown fields")

    # -- backend names: 1-64 of [A-Za-z0-9._-], not starting with '.'.
    for name in ("n" * 65, "", ".b", "b 3", "b/3", "b3\n", "b\x013", "bä",
                 "b:3"):
        error(r.api("POST", "/v1/backends", {"name": name,
                                             "host": "127.0.0.13"}),
              400, "name", "backend name %r" % name)
    error(r.api("POST", "/v1/backends", {"name": 3, "host": "127.0.0.13"}),
          400, "name", "backend name not a string")
    unchanged("bad backend names")
    ok = "A-z_0.9" + "n" * 57
    eq(len(ok), 64, "name length")
    status(r.api("POST", "/v1/backends", {"name": ok, "host": "127.0.0.13"}),
           201, "64-character name")
    status(r.api("GET", "/v1/backends/" + ok), 200, "64-character name read")
    status(r.api("DELETE", "/v1/backends/" + ok), 200, "64-character name del")
    base = snapshot(r)

    # -- user names: 1-255 bytes, no control characters.
    long_user = "u" * 256
    for user in (long_user, "", "al\x01ice", "al\nice", "al\x7fice",
                 "tab\tuser"):
        error(r.lookup(user), 400, "user", "lookup of user %r" % user[:20])
        if user:
            error(r.api("GET", "/v1/users/" + q(user)), 400, "user",
                  "show user %r" % user[:20])
            error(r.api("PUT", "/v1/users/" + q(user), {"backend": "b1"}),
                  400, "user", "pin user %r" % user[:20])
    # A multibyte name counts bytes: 128 two-byte characters are 256 bytes.
    error(r.lookup("\u00e9" * 128), 400, "user", "256-byte UTF-8 user")
    error(r.api("GET", "/v1/lookup?protocol=imap"), 400, "user",
          "lookup without user")
    error(r.lookup("alice", protocol="gopher"), 400, "protocol",
          "lookup with an unknown protocol")
    error(r.api("GET", "/v1/lookup?user=alice"), 400, "protocol",
          "lookup without protocol")
    error(r.lookup("alice", tag="bad tag"), 400, "tag", "lookup with bad tag")
    error(r.api("PUT", "/v1/users/alice", {"backend": "b1", "x": 1}), 400,
          "x", "PUT user with an unknown field")
    error(r.api("PUT", "/v1/users/alice", {"backend": 1}), 400, "backend",
          "PUT user with a non-string backend")
    error(r.api("PUT", "/v1/users/alice", {}), 400, "backend",
          "PUT user without backend")
    for qs in ("limit=0", "limit=10001", "limit=x", "limit=-5",
               "limit=99999999999999999999"):
        error(r.api("GET", "/v1/users?" + qs), 400, "limit",
              "user map with " + qs)
    unchanged("bad user names")
    js = r.lookup_ok("u" * 255)
    eq(js["user"], "u" * 255, "255-byte user accepted")
    base = snapshot(r)

    # -- oversized headers: refused by the HTTP layer, the daemon lives on.
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    try:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " +
                  b"a" * 16384 + b"\r\n\r\n")
        resp = b""
        while True:
            try:
                d = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            resp += d
    finally:
        s.close()
    check(not resp.startswith(b"HTTP/1.1 200") and
          not resp.startswith(b"HTTP/1.0 200"),
          "16 KiB of headers refused, got %r" % resp[:60])
    status(r.api("GET", "/v1/health", token=None), 200,
           "health after oversized headers")
    unchanged("oversized headers")

    # -- garbage on the socket.
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n",
                 b"GET /v1/health HTTP/9.9\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        try:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
        finally:
            s.close()
    status(r.api("GET", "/v1/health", token=None), 200, "health after junk")
    unchanged("garbage requests")


rt.run(main)
