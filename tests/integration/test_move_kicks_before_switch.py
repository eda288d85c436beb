"""A move keeps a user on one backend at a time: it kicks the user on the
old backend and on every registered proxy, waits until the old backend's
`who` shows no session, and only then switches; lookups meanwhile wait and
land on the new backend; sessions that outlive move_timeout fail the move
and the user stays; a pin of an assigned user is a move; moves queue
behind move_max_parallel; a roostd killed mid-move takes the move up again
at start and finishes it."""

import json
import socket
import threading
import time

import roosttest as rt
from roosttest import check, eq, error
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-0123456789"


def wait_move(r, mid, seconds=15):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        st, js = r.api("GET", "/v1/moves/%d" % mid)
        eq(st, 200, "GET move %d" % mid)
        if js["state"] in ("done", "failed"):
            return js
        time.sleep(0.05)
    raise rt.Failure("move %d not over after %ss" % (mid, seconds))


def main(t):
    fakes = {n: FakeDoveadm(a, KEY) for n, a in
             (("b1", "127.0.0.11"), ("b2", "127.0.0.12"), ("p1", "127.0.0.1"))}
    r = t.roost(move_timeout="3s", move_login_wait="2s",
                move_max_parallel="2")
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        r.add_backend(n, a, doveadm={"url": fakes[n].url, "api_key": KEY})
    st, js = r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": fakes["p1"].url, "api_key": KEY}})
    eq(st, 201, "register proxy p1: %r" % js)
    users = ["u%02d" % i for i in range(30)]
    placed = {u: r.lookup_ok(u)["backend"] for u in users}
    on_b1 = [u for u in users if placed[u] == "b1"]
    check(len(on_b1) >= 11, "users on b1")

    # alice has a session on b1 that ends with the kick after a delay.
    alice = on_b1[0]
    fakes["b1"].sessions[alice] = 1
    fakes["b1"].sticky.add(alice)
    threading.Timer(1.0, lambda: (fakes["b1"].sticky.discard(alice),
                                  fakes["b1"].sessions.pop(alice, None))
                    ).start()
    st, js = r.api("POST", "/v1/moves", {"user": alice, "backend": "b2"})
    eq(st, 202, "move queued: %r" % js)
    mid = js["move"]["id"]
    time.sleep(0.2)
    t0 = time.monotonic()
    ans = r.lookup_ok(alice)		# waits for the switch
    waited = time.monotonic() - t0
    eq(ans["backend"], "b2", "the waiting lookup lands on b2")
    check(0.4 < waited < 2.5, "the lookup waited for the switch (%.2f s)"
          % waited)
    eq(wait_move(r, mid)["state"], "done", "move done")
    check(fakes["b1"].commands("kick", alice), "kicked on b1")
    check(fakes["p1"].commands("kick", alice), "kicked on the proxy")
    check(len(fakes["b1"].commands("who")) >= 2,
          "who polled until the session was gone")
    js = r.user(alice)
    eq((js["backend"], js["pinned"]), ("b2", True), "alice on b2, pinned")

    # Sessions that never end: the move fails, the user stays.
    bob = on_b1[1]
    fakes["b1"].sessions[bob] = 2
    fakes["b1"].sticky.add(bob)
    st, js = r.api("POST", "/v1/moves", {"user": bob, "backend": "b2"})
    mv = wait_move(r, js["move"]["id"])
    eq(mv["state"], "failed", "move with sessions that stay")
    check("session" in mv["error"] and "b1" in mv["error"],
          "the error says why: %r" % mv["error"])
    eq(r.user(bob)["backend"], "b1", "bob stays on b1")
    eq(r.lookup_ok(bob)["backend"], "b1", "and is answered b1")
    # A lookup during such a move gets a temporary failure after the wait.
    st, js = r.api("POST", "/v1/moves", {"user": bob, "backend": "b2"})
    eq(st, 202, "second try queued")
    time.sleep(0.2)
    st, js2 = r.lookup(bob)
    eq((st, js2.get("reason")), (503, "moving"),
       "a lookup past move_login_wait: 503 moving")
    wait_move(r, js["move"]["id"])
    fakes["b1"].sticky.discard(bob)
    fakes["b1"].sessions.pop(bob, None)

    # A pin of an assigned user is a move: answered when it is over.
    carol = on_b1[2]
    fakes["b1"].sessions[carol] = 1
    t0 = time.monotonic()
    st, js = r.api("PUT", "/v1/users/" + carol, {"backend": "b2"})
    eq((st, js["backend"], js["pinned"]), (200, "b2", True), "pin: %r" % js)
    check(fakes["b1"].commands("kick", carol), "the pin kicked carol")

    # Refusals change nothing.
    error(r.api("POST", "/v1/moves", {"user": carol, "backend": "b2"}), 409,
          "backend", "move to where the user is")
    error(r.api("POST", "/v1/moves", {"user": "nobody", "backend": "b2"}),
          404, "user", "move of a user without an assignment")
    error(r.api("POST", "/v1/moves", {"user": carol, "backend": "zz"}), 404,
          "backend", "move to an unknown backend")
    error(r.api("POST", "/v1/moves", {"user": carol}), 400, "backend",
          "move without a backend")

    # Queue: 6 moves, at most 2 at once, all done.
    batch = on_b1[3:9]
    for u in batch:
        fakes["b1"].sessions[u] = 1
    ids = []
    for u in batch:
        st, js = r.api("POST", "/v1/moves", {"user": u, "backend": "b2"})
        eq(st, 202, "queue %s" % u)
        ids.append(js["move"]["id"])
    most = 0
    for _ in range(200):
        st, js = r.api("GET", "/v1/moves?state=open")
        running = [m for m in js["moves"] if m["state"] != "queued"]
        most = max(most, len(running))
        if not js["moves"]:
            break
        time.sleep(0.02)
    check(most <= 2, "at most move_max_parallel under way (%d)" % most)
    for i in ids:
        eq(wait_move(r, i)["state"], "done", "queued move %d" % i)

    # Clients that hang up while roostd holds their request: a pin waiting
    # for its move and a lookup waiting for the switch.  roostd answers
    # into the void when the move ends and carries on (CI runs this
    # scenario against the AddressSanitizer build too).
    erin = on_b1[9]
    fakes["b1"].sessions[erin] = 1
    fakes["b1"].sticky.add(erin)
    pin = socket.create_connection(("127.0.0.1", r.port))
    body = json.dumps({"backend": "b2"}).encode()
    pin.sendall(b"PUT /v1/users/%s HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
                % (erin.encode(), r.admin_token.encode(), len(body)) + body)
    time.sleep(0.5)
    look = socket.create_connection(("127.0.0.1", r.port))
    look.sendall(b"GET /v1/lookup?user=%s&protocol=imap HTTP/1.1\r\n"
                 b"Host: x\r\nAuthorization: Bearer %s\r\n\r\n"
                 % (erin.encode(), r.admin_token.encode()))
    time.sleep(0.2)
    pin.close()
    look.close()
    fakes["b1"].sticky.discard(erin)
    fakes["b1"].sessions.pop(erin, None)
    for _ in range(100):
        if r.user(erin)["backend"] == "b2":
            break
        time.sleep(0.05)
    eq(r.user(erin)["backend"], "b2", "the move ended without its caller")
    check(r.alive(), "roostd alive after answering hung-up clients")

    # kill -9 mid-move: taken up again at start, then finished.
    dave = on_b1[10]
    fakes["b1"].sessions[dave] = 1
    fakes["b1"].sticky.add(dave)
    r.write_config(move_timeout="30s", move_login_wait="2s",
                   move_max_parallel="2")
    r.restart()
    st, js = r.api("POST", "/v1/moves", {"user": dave, "backend": "b2"})
    mid = js["move"]["id"]
    time.sleep(0.5)
    eq(r.user(dave)["backend"], "b1", "dave still on b1 while sessions last")
    r.restart()
    check("taken up again" in r.log(), "the open move was taken up")
    fakes["b1"].sticky.discard(dave)
    fakes["b1"].sessions.pop(dave, None)
    eq(wait_move(r, mid)["state"], "done", "the move finished after restart")
    eq(r.lookup_ok(dave)["backend"], "b2", "dave on b2")
    r.restart()
    eq(r.user(dave)["backend"], "b2", "and stays after another restart")

    st, js = r.api("GET", "/v1/moves?limit=1000")
    states = {}
    for m in js["moves"]:
        states[m["state"]] = states.get(m["state"], 0) + 1
    eq(states.get("failed"), 2, "two failed moves in the history: %r" % states)
    r.secrets_absent(KEY)
    for f in fakes.values():
        f.close()


rt.run(main)
