"""`backend down` and `backend remove --force` kick first: the backend gets
no new user at once, but its users keep it until the proxies (kick -f
user_roost_backend) and the backend itself (kick of every user) have ended
their sessions, bounded by move_timeout; then they go elsewhere at their
next login.  The removal answers when the backend is gone.  `user kick`
ends one user's sessions on its backend and every proxy, moving nobody."""

import threading
import time

import roosttest as rt
from roosttest import check, eq
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-down-00001"


def main(t):
    fakes = {n: FakeDoveadm(a, KEY) for n, a in
             (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
              ("b3", "127.0.0.13"))}
    proxy = FakeDoveadm("127.0.0.1", KEY, kick_delay=1.0)
    r = t.roost(move_timeout="5s")
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
                 ("b3", "127.0.0.13")):
        r.add_backend(n, a, doveadm={"url": fakes[n].url, "api_key": KEY})
    eq(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": proxy.url, "api_key": KEY}})[0], 201, "proxy")
    users = ["u%02d" % i for i in range(60)]
    placed = {u: r.lookup_ok(u)["backend"] for u in users}
    on_b1 = [u for u in users if placed[u] == "b1"]
    for u in on_b1:
        fakes["b1"].sessions[u] = 1

    t0 = time.monotonic()
    js = r.patch_backend("b1", state="down")
    eq(js["state"], "down", "b1 down, answered at once")
    check(time.monotonic() - t0 < 0.5, "PATCH does not wait")
    eq(r.lookup_ok(on_b1[0])["backend"], "b1",
       "while the kicks run, b1's users keep b1")
    check("b1" not in {r.lookup_ok("new%d" % i)["backend"]
                       for i in range(20)}, "no new user on b1")
    while r.lookup_ok(on_b1[0])["backend"] == "b1":
        check(time.monotonic() - t0 < 8, "b1's users go elsewhere in time")
        time.sleep(0.05)
    check(time.monotonic() - t0 >= 0.9, "not before the proxy's kick ended")
    eq(proxy.commands("kick"), [{"passdbField": "user_roost_backend",
                                 "mask": ["b1"]}], "the proxy kicked b1's")
    eq(fakes["b1"].commands("kick"), [{"mask": ["*"]}],
       "b1 kicked every session of its own")
    eq(fakes["b1"].sessions, {}, "no session left on b1")
    check(all(r.lookup_ok(u)["backend"] in ("b2", "b3") for u in on_b1),
          "every b1 user elsewhere")

    # remove --force: answered when the backend is gone, after the kicks.
    on_b2 = [u for u in users if r.user(u)["backend"] == "b2"]
    for u in on_b2:
        fakes["b2"].sessions[u] = 1
    proxy.calls.clear()
    t0 = time.monotonic()
    rc, out, err = r.ctl("backend", "remove", "--force", "b2")
    took = time.monotonic() - t0
    eq(rc, 0, "roostctl backend remove --force (%s)" % err)
    check(took >= 0.9, "the removal waited for the kicks (%.2f s)" % took)
    eq(proxy.commands("kick"), [{"passdbField": "user_roost_backend",
                                 "mask": ["b2"]}], "the proxy kicked b2's")
    eq(fakes["b2"].sessions, {}, "no session left on b2")
    eq(r.api("GET", "/v1/backends/b2")[0], 404, "b2 is gone")
    check(all(r.lookup_ok(u)["backend"] == "b3" for u in on_b2),
          "b2's users on b3 (b1 is down)")
    r.restart()
    eq(r.api("GET", "/v1/backends/b2")[0], 404, "b2 gone after kill -9")
    # user kick: the user's sessions on its backend and the proxy, now.
    u = on_b2[0]
    fakes["b3"].sessions[u] = 2
    proxy.calls.clear()
    rc, out, err = r.ctl("user", "kick", u)
    eq(rc, 0, "roostctl user kick (%s)" % err)
    check("kicked" in out, "roostctl says so: %r" % out)
    eq(fakes["b3"].sessions.get(u), None, "kicked on b3")
    eq(proxy.commands("kick"), [{"mask": [u]}], "kicked on the proxy")
    eq(r.user(u)["backend"], "b3", "a kick moves nobody")
    eq(r.api("POST", "/v1/users/nobody/kick")[0], 404, "unknown user")
    r.secrets_absent(KEY)
    for f in list(fakes.values()) + [proxy]:
        f.close()


rt.run(main)
