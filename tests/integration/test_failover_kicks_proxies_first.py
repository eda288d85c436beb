"""Before a failed backend's users go elsewhere, every registered proxy
kicks the sessions it proxies to that backend (kick -f user_roost_backend
B on 2.4, proxy kick on 2.3, found out by the proxy's answer); until the
kicks are over (bounded by move_timeout, a proxy that never answers does
not hold it longer) the backend's users are still answered with it, then
with another backend of their pool.  When the last healthy backend fails
nobody is kicked."""

import time

import roosttest as rt
from roosttest import check, eq
from fakedoveadm import FakeDoveadm
from fakemail import FakeService

KEY = "fake-proxy-key-abcdefghijkl"


def main(t):
    imap = {n: FakeService(a, "imap") for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"))}
    proxies = {"p24": FakeDoveadm("127.0.0.1", KEY),
               "p23": FakeDoveadm("127.0.0.2", KEY, version="2.3",
                                  kick_delay=0.5),
               "phang": FakeDoveadm("127.0.0.3", KEY)}
    proxies["phang"].hang = True
    r = t.roost(probe_interval="1s", probe_timeout="1s", probe_fall="2",
                probe_rise="2", move_timeout="2s")
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        r.add_backend(n, a, ports={"imap": imap[n].port, "pop3": 0,
                                   "lmtp": 0, "submission": 0, "sieve": 0})
    for n, f in proxies.items():
        eq(r.api("POST", "/v1/proxies", {"name": n, "doveadm": {
            "url": f.url, "api_key": KEY}})[0], 201, "proxy %s" % n)
    users = ["u%02d" % i for i in range(40)]
    placed = {u: r.lookup_ok(u)["backend"] for u in users}
    user = [u for u in users if placed[u] == "b1"][0]

    imap["b1"].set_mode("refuse")
    t0 = time.monotonic()
    while r.backend("b1")["health"]["state"] != "failed":
        check(time.monotonic() - t0 < 8, "b1 failed in time")
        time.sleep(0.05)
    failed_at = time.monotonic()
    eq(r.lookup_ok(user)["backend"], "b1",
       "while the proxies kick, b1's users are still answered b1")
    while r.lookup_ok(user)["backend"] == "b1":
        check(time.monotonic() - failed_at < 6, "failover within bound")
        time.sleep(0.05)
    handed = time.monotonic() - failed_at
    eq(r.user(user)["backend"], "b2", "then b2")
    check(1.5 < handed < 4, "the hanging proxy held the failover until "
          "move_timeout, no longer (%.2f s)" % handed)
    eq(proxies["p24"].commands("kick"),
       [{"passdbField": "user_roost_backend", "mask": ["b1"]}],
       "2.4 proxy: kick -f user_roost_backend b1")
    eq(proxies["p23"].commands("proxyKick"),
       [{"passdbField": "user_roost_backend", "user": ["b1"]}],
       "2.3 proxy: proxy kick after kick -f was refused")
    log = r.log()
    check("proxy phang did not kick" in log or "unanswered" in log,
          "the unanswered proxy is logged")

    # b2 is now the last healthy backend: its failure kicks nobody.
    for p in proxies.values():
        p.calls.clear()
    imap["b2"].set_mode("refuse")
    t0 = time.monotonic()
    while r.backend("b2")["health"]["state"] != "failed":
        check(time.monotonic() - t0 < 8, "b2 failed in time")
        time.sleep(0.05)
    time.sleep(0.5)
    eq([p.calls for p in proxies.values()], [[], [], []],
       "no kicks when every backend failed at once")
    eq(r.lookup_ok(user)["backend"], "b2", "users stay (suspect roostd)")
    r.secrets_absent(KEY)
    proxies["phang"].hang = False
    for f in list(proxies.values()) + list(imap.values()):
        f.close()


rt.run(main)
