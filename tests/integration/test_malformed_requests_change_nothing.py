"""Bad input at scale changes nothing: a few thousand malformed requests
(random bytes, broken request lines, oversized and duplicated headers,
bodies cut short, slow senders, bad percent-encoding and UTF-8 on every
endpoint, with and without valid tokens) against a roostd that holds a few
thousand assignments.  Afterwards roostd is up and answers, every
assignment, backend and audit entry is as before, every answer it gave was
an HTTP answer (JSON where it answered at all), and its log holds no
secret.  CI also runs this scenario against the AddressSanitizer build."""

import json
import random
import socket
import time

import roosttest as rt
from roosttest import check, eq

USERS = 3000
ROUNDS = 3000
SEED = 20261129


def snapshot(r):
    users = [{k: v for k, v in u.items() if k != "last_lookup"}
             for u in r.all_users()]
    backends = [{k: v for k, v in b.items() if k != "updated"}
                for b in r.backends()]
    audit = r.api("GET", "/v1/audit?limit=1000")[1]
    return users, backends, audit


def send(port, data, linger=0.0, read=True, timeout=3.0):
    """Send raw bytes on a new connection; return what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        if linger:
            time.sleep(linger)
        if read:
            s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
    except OSError:		# reset, closed early, timed out
        pass
    finally:
        s.close()
    return out


def slow(port, data, step, delay):
    """A slow sender: a few bytes at a time."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
            time.sleep(delay)
        s.shutdown(socket.SHUT_WR)
        return s.recv(65536)
    except OSError:
        return b""
    finally:
        s.close()


def junk_bytes(rnd, n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


# Every one is refused wherever it stands (\udce9 goes out as the raw byte
# 0xe9, a Latin-1 e-acute that is not UTF-8).
BAD_SEGMENTS = ["%FF", "%FEx", "%C0%AF", "%ED%A0%80", "%", "%Z1", "%0", "%00",
                "a%00b", "x" * 300, "%E2%82", "caf\udce9", "%7F", "%0A"]


def make_request(rnd, r, tokens):
    """One malformed request, as bytes."""
    kind = rnd.randrange(12)
    tok = rnd.choice(tokens)
    auth = ("Authorization: Bearer %s\r\n" % tok) if tok else ""
    seg = rnd.choice(BAD_SEGMENTS)
    if kind == 0:
        return junk_bytes(rnd, rnd.randrange(1, 2000)) + b"\r\n\r\n"
    if kind == 1:
        return rnd.choice([
            b"GET\r\n\r\n", b"GET /v1/lookup\r\n\r\n",
            b"GET /v1/lookup HTTP/9.9\r\n\r\n", b"\x00GET / HTTP/1.1\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n", b"BREW /v1/status HTTP/1.1\r\n\r\n",
            b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n",
            b"GET /v1/health HTTP/1.1\r\nHost\r\n\r\n",
            b"GET /v1/health HTTP/1.1\r\n: x\r\n\r\n",
            b"GET /v1/health HTTP/1.1\r\n\tfolded\r\n\r\n",
            b"\r\n\r\n\r\n", b"GET /v1/users/%s HTTP/1.1\r\n" % seg.encode("utf-8", "surrogateescape"),
        ])
    if kind == 2:		# oversized header
        return (b"GET /v1/status HTTP/1.1\r\nHost: x\r\n" + auth.encode() +
                b"X-Big: " + b"b" * rnd.choice([9000, 70000]) + b"\r\n\r\n")
    if kind == 3:		# many or duplicated headers
        hdrs = "".join("X-H%d: %d\r\n" % (i, i) for i in
                       range(rnd.choice([10, 500, 2000])))
        return ("GET /v1/status HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n" %
                (auth, auth, hdrs)).encode()
    if kind == 4:		# conflicting lengths
        return ("PUT /v1/users/alice0001 HTTP/1.1\r\nHost: x\r\n%s"
                "Content-Length: 5\r\nContent-Length: 17\r\n\r\n"
                '{"backend":"b2"}' % auth).encode()
    if kind == 5:		# body cut short
        body = b'{"backend": "b2"}'
        return (("PUT /v1/users/%s HTTP/1.1\r\nHost: x\r\n%s"
                 "Content-Length: %d\r\n\r\n" % (
                     rnd.choice(["alice0002", seg]), auth, len(body) + 50))
                .encode("utf-8", "surrogateescape") + body)
    if kind == 6:		# broken chunked bodies
        return (("POST /v1/backends HTTP/1.1\r\nHost: x\r\n%s"
                 "Transfer-Encoding: chunked\r\n\r\n" % auth).encode() +
                rnd.choice([b"zz\r\nabc\r\n0\r\n\r\n",
                            b"ffffffffffffffff\r\nabc\r\n",
                            b"5\r\n{\"na\r\n", b"-1\r\n\r\n"]))
    if kind == 7:		# bad encodings in the lookup
        q = rnd.choice([
            "user=%s&protocol=imap" % seg, "user=a&protocol=%FF",
            "user=a&user=b&protocol=imap", "user=a&protocol=imap&tag=%C0",
            "user=&protocol=imap", "protocol=imap", "user=a&protocol=",
            "user=%%%%&protocol=imap", "user=a%00&protocol=imap",
            "user=" + "u" * 5000 + "&protocol=imap",
        ])
        return ("GET /v1/lookup?%s HTTP/1.1\r\nHost: x\r\n%s\r\n" %
                (q, auth)).encode("utf-8", "surrogateescape")
    if kind == 8:		# bad paths and queries on admin endpoints
        m, p = rnd.choice([
            ("GET", "/v1/users/" + seg), ("DELETE", "/v1/users/" + seg),
            ("GET", "/v1/backends/" + seg), ("DELETE", "/v1/backends/" + seg),
            ("GET", "/v1/users?cursor=" + seg), ("GET", "/v1/users?limit=" + seg),
            ("GET", "/v1/audit?before=" + seg), ("GET", "/v1/users?backend=" + seg),
            ("DELETE", "/v1/backends/b1?force=" + seg),
            ("DELETE", "/v1/backends/b1?force=1&force=1"),
            ("GET", "/v1/users/alice0003/x"), ("GET", "/v1//users"),
        ])
        return ("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (m, p, auth)).encode(
            "utf-8", "surrogateescape")
    if kind == 9:		# JSON bodies that are wrong
        body = rnd.choice([
            b'{"backend": "\xff"}', b'{"backend": "b2", "backend": "b1"}',
            b'{"backend": 5}', b"[]", b"null", b'{"backend": "b2"',
            b'{"name": "\xc0\xaf", "host": "127.0.0.1"}',
            b'{"name": "bx", "host": "127.0.0.1", "weight": 1e999}',
            b'{"name": "bx", "host": "127.0.0.1", "ports": {"imap": -1}}',
            b'{"host": "127.0.0.1\\u0000x"}', b'{"weight": "100"}',
            junk_bytes(rnd, 64), b"{" * 5000,
        ])
        m, p = rnd.choice([("PUT", "/v1/users/alice0004"),
                           ("POST", "/v1/backends"),
                           ("PATCH", "/v1/backends/b1")])
        return ("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" %
                (m, p, auth, len(body))).encode() + body
    if kind == 10:		# a header line that never ends
        return b"GET /v1/status HTTP/1.1\r\nX-Long: " + b"y" * 20000
    # kind 11: an absurd Content-Length with a tiny body
    return ("POST /v1/backends HTTP/1.1\r\nHost: x\r\n%s"
            "Content-Length: 99999999999999999999\r\n\r\n{}" % auth).encode()


def main(t):
    r = t.roost(lookup_token=True)
    key = "doveadm-key-" + "k" * 20
    r.add_backend("b1", "127.0.0.11", doveadm={
        "url": "http://127.0.0.11:8080/doveadm/v1", "api_key": key})
    r.add_backend("b2", "127.0.0.12")
    conn = rt.Conn(r.port)
    hdr = {"Authorization": "Bearer " + r.lookup_token}
    for i in range(USERS):
        st, _, _ = conn.request("GET", "/v1/lookup?user=alice%04d&protocol=imap"
                                % i, headers=hdr)
        eq(st, 200, "placing alice%04d" % i)
    conn.close()
    r.api("PUT", "/v1/users/alice0001", {"backend": "b1"})
    before = snapshot(r)
    eq(len(before[0]), USERS, "users placed")

    rnd = random.Random(SEED)
    tokens = [None, r.admin_token, r.lookup_token, "wrong", "x" * 5000]
    answers = 0
    t0 = time.monotonic()
    for i in range(ROUNDS):
        data = make_request(rnd, r, tokens)
        out = send(r.port, data, timeout=5.0)
        if out:
            answers += 1
            check(out.startswith(b"HTTP/1.1 ") or out.startswith(b"HTTP/1.0 "),
                  "round %d: not an HTTP answer: %r" % (i, out[:80]))
            head, _, body = out.partition(b"\r\n\r\n")
            code = int(head[9:12])
            check(code >= 400 or code in (200, 201),
                  "round %d: status %d" % (i, code))
            check(code not in (200, 201) or b"/v1/health" in data or
                  b"GET /v1/status" in data or b"GET /v1/users?" in data or
                  b"GET /v1/audit" in data or b"GET /v1/backends/" in data,
                  "round %d: a malformed request was accepted: %r -> %r" %
                  (i, data[:120], out[:200]))
        if i % 500 == 0:
            check(r.alive(), "roostd alive after %d requests" % i)
    elapsed = time.monotonic() - t0
    print("%d malformed requests in %.1f s, %d answered" %
          (ROUNDS, elapsed, answers))

    # A handful of slow senders, each bounded to about two seconds.
    for data in (b"GET /v1/lookup?user=alice0005&protocol=imap HTTP/1.1\r\n"
                 b"Authorization: Bearer " + r.lookup_token.encode() +
                 b"\r\n\r\n",
                 b"PUT /v1/users/alice0006 HTTP/1.1\r\nAuthorization: Bearer "
                 b"wrong\r\nContent-Length: 16\r\n\r\n{\"backend\":\"b2\"}",
                 b"\xff\xfe" * 20):
        slow(r.port, data, 3, 0.05)

    check(r.alive(), "roostd survived")
    eq(snapshot(r), before, "assignments, backends and audit unchanged")
    js = r.lookup_ok("alice0007", token="lookup")
    eq(js["backend"], [u for u in before[0]
                       if u["user"] == "alice0007"][0]["backend"],
       "lookups still answered as before")
    r.secrets_absent(r.admin_token, r.lookup_token, key)
    log = r.log()
    check(len(log) < 200000, "log stays small (%d bytes)" % len(log))


rt.run(main)
