"""PostgreSQL that stops answering without closing anything (every server
process stopped with SIGSTOP for 10 s: what a hung server, or a network
that drops the replies, looks like to libpq) under a running roostd with
roles, a change feed and a replication queue.  The kernel still takes what
roostd sends, so only roostd's own bound on each wait keeps its loop free:
every user it already knew is still answered from memory with the backend
it had, a new user and an admin change get a temporary failure naming the
store, and after the thaw everything resumes without a restart and what was
acknowledged is in the database."""

import http.client
import json
import time

import roosttest as rt
from roosttest import check, eq, q, status, wait_for
from fakedoveadm import add_fake_backends

KEY = "fake-doveadm-key-frozen-5150"
FROZEN_S = 10
# A lookup of a known user is answered from memory; this is not a speed
# bound, only what "answered" means when the alternative is never.
ANSWER_S = 5


def call(r, method, path, body=None):
    """(status, JSON) of one request on a fresh connection, or (None, why)
    when no answer came within ANSWER_S."""
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=ANSWER_S)
    headers = {"Authorization": "Bearer " + r.admin_token}
    if body is not None:
        body = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        c.request(method, path, body=body, headers=headers)
        resp = c.getresponse()
        return resp.status, json.loads(resp.read())
    except OSError as e:
        return None, "no answer in %d s (%s)" % (ANSWER_S, e)
    finally:
        c.close()


def lookup(r, user):
    return call(r, "GET", "/v1/lookup?user=%s&protocol=imap" % q(user))


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, fakes):
    r = t.roost(start=False, events_token=True,
                store="postgresql:" + pg.conninfo, replication="yes")
    r.start()
    add_fake_backends(r, fakes, KEY)
    known = ["known%02d" % i for i in range(40)]
    where = {u: r.lookup_ok(u)["backend"] for u in known}
    # Queued and running: a sync that ends during the freeze logs.
    wait_for("the first syncs", lambda: rt.repl_settled(r))
    wait_for("roostd holds its roles", lambda: "moves" in rt.roles(r))

    log_before = len(r.log().splitlines())
    pg.freeze()
    try:
        t0 = time.monotonic()
        served, refused, i, slowest, slowest_new = 0, 0, 0, 0.0, 0.0
        while time.monotonic() - t0 < FROZEN_S:
            u = known[i % len(known)]
            t1 = time.monotonic()
            st, js = lookup(r, u)
            slowest = max(slowest, time.monotonic() - t1)
            eq((st, isinstance(js, dict) and js.get("backend")),
               (200, where[u]), "known user %s %.1fs into the freeze: %r"
               % (u, time.monotonic() - t0, js))
            served += 1
            if i % 10 == 0:
                t1 = time.monotonic()
                st, js = lookup(r, "new%03d" % i)
                slowest_new = max(slowest_new, time.monotonic() - t1)
                eq((st, isinstance(js, dict) and js.get("reason")),
                   (503, "store"), "a new user during the freeze: %r"
                   % (js,))
                check("backend" not in js, "no backend in a refusal: %r"
                      % js)
                refused += 1
            i += 1
            time.sleep(0.05)
        pin = known[5]
        other = "b2" if where[pin] == "b1" else "b1"
        st, js = call(r, "PUT", "/v1/users/" + q(pin), {"backend": other})
        eq(st, 503, "a pin during the freeze: %r" % (js,))
        st, js = lookup(r, pin)
        eq((st, js.get("backend")), (200, where[pin]),
           "a refused pin changes nothing")
        check(r.alive(), "roostd lives through the freeze")
        print("frozen: %d known-user lookups answered (slowest %.2f s), %d "
              "new users refused (slowest %.2f s)" % (served, slowest,
                                                      refused, slowest_new))
    finally:
        pg.thaw()

    during = r.log().splitlines()[log_before:]
    print("%d log lines during the freeze:\n  %s" % (len(during),
                                                   "\n  ".join(during)))
    check(len(during) <= 12, "%d log lines in a %d s freeze:\n%s" % (
        len(during), FROZEN_S, "\n".join(during[:40])))

    st, js = wait_for("a new user placed after the thaw",
                      lambda: (lambda x: x if x[0] == 200 else None)(
                          r.lookup("after-freeze")), 30)
    placed = js["backend"]
    status(wait_for("the pin after the thaw", lambda: (
        lambda x: x if x[0] == 200 else None)(
            r.api("PUT", "/v1/users/" + q(pin), {"backend": other})), 30),
        200, "the pin after the thaw")
    wait_for("roostd holds its roles again", lambda: "moves" in rt.roles(r),
             30)
    for u in known:
        eq(r.lookup_ok(u)["backend"], other if u == pin else where[u],
           "%s after the thaw" % u)

    r.stop()
    r.start()
    eq(r.user("after-freeze")["backend"], placed, "the user placed after "
       "the thaw, after a restart")
    eq((r.user(pin)["backend"], r.user(pin)["pinned"]), (other, True),
       "the pin, after a restart")
    r.secrets_absent(pg.password, KEY)


rt.run(main)
