"""Probes decide who is handed out: a backend whose service stops greeting
(a BYE, silence, a refused connection, a refused test login) is marked
failing, then failed after probe_fall rounds, and logged once per change;
its users get another backend of their pool at their next lookup and stay
there when it recovers (after probe_rise rounds); when every backend fails
at once roostd raises an alarm and keeps routing to the last healthy set;
a backend with tls = yes is probed over TLS; verdicts survive kill -9."""

import re
import time

import roosttest as rt
from roosttest import check, eq
from fakemail import FakeService, server_tls


def wait_health(r, name, state, seconds):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        h = r.backend(name)["health"]
        if h["state"] == state:
            return h, time.monotonic() - t0
        time.sleep(0.1)
    raise rt.Failure("backend %s not %s within %ss: %r" %
                     (name, state, seconds, r.backend(name)["health"]))


def main(t):
    services = {}
    for name, addr in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        services[name] = {p: FakeService(addr, p) for p in ("imap", "lmtp")}
    r = t.roost(probe_interval="1s", probe_timeout="1s", probe_rise="2",
                probe_fall="2")
    for name, addr in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        r.add_backend(name, addr, ports={
            "imap": services[name]["imap"].port,
            "lmtp": services[name]["lmtp"].port, "pop3": 0,
            "submission": 0, "sieve": 0})
    users = ["u%03d" % i for i in range(60)]
    first = {u: r.lookup_ok(u)["backend"] for u in users}
    on_b1 = [u for u, b in first.items() if b == "b1"]
    check(10 < len(on_b1) < 50, "users on both backends")

    h, _ = wait_health(r, "b1", "ok", 5)
    for _ in range(50):
        h = r.backend("b1")["health"]
        if h["checked"] is not None:
            break
        time.sleep(0.1)
    check(h["checked"] is not None and h["latency_ms"] is not None,
          "a probe round ran: %r" % h)
    check(any("LHLO roost.probe" in l for l in services["b1"]["lmtp"].lines),
          "the LMTP probe said LHLO")

    # b1's IMAP says BYE: failing, then failed within fall rounds.
    services["b1"]["imap"].set_mode("bye")
    h, took = wait_health(r, "b1", "failed", 6)
    check("imap" in h["error"] and "unexpected greeting" in h["error"],
          "the error names the service and what it said: %r" % h["error"])
    eq(h["routed"], False, "a failed backend is not handed out")
    print("b1 failed %.1f s after its IMAP began to refuse" % took)
    moved = {u: r.lookup_ok(u)["backend"] for u in on_b1}
    eq(set(moved.values()), {"b2"}, "b1's users fail over to b2")
    check("b1" not in {r.lookup_ok("new%d" % i)["backend"] for i in range(20)},
          "no new user lands on a failed backend")

    # b1 recovers: ok after rise rounds; its old users stay on b2.
    services["b1"]["imap"].set_mode("ok")
    wait_health(r, "b1", "ok", 6)
    eq({u: r.lookup_ok(u)["backend"] for u in on_b1}, moved,
       "recovered b1 gets nobody back by itself")

    # A service that accepts and never greets fails by timeout.
    services["b2"]["lmtp"].set_mode("silent")
    h, _ = wait_health(r, "b2", "failed", 8)
    check("lmtp" in h["error"] and "timed out" in h["error"],
          "silent LMTP: %r" % h["error"])
    # Now b1 is the healthy set; then it fails too: everything failed.
    services["b1"]["imap"].set_mode("refuse")
    h, _ = wait_health(r, "b1", "failed", 6)
    check("refused" in h["error"].lower(), "refused: %r" % h["error"])
    time.sleep(0.3)
    check("ALARM: every backend failed" in r.log(), "alarm logged")
    eq(r.backend("b1")["health"]["routed"], True,
       "the last healthy backend is still handed out")
    eq(r.lookup_ok(on_b1[0])["backend"], "b1",
       "users of b2 (failed before the alarm) go to the last healthy set")
    eq(r.lookup_ok("after-alarm")["backend"], "b1",
       "new users go to the last healthy set")
    services["b1"]["imap"].set_mode("ok")
    wait_health(r, "b1", "ok", 6)
    check("alarm cleared" in r.log(), "alarm cleared")
    eq(r.backend("b2")["health"]["state"], "failed", "b2 still failed")

    # Verdicts survive kill -9: b2 is not handed out right after a restart.
    r.restart()
    eq(r.backend("b2")["health"]["state"], "failed", "b2 failed after restart")
    check("b2" not in {r.lookup_ok("restart%d" % i)["backend"]
                       for i in range(20)}, "no new user on b2 after restart")

    # tls = yes: probed over TLS; a plain service behind it fails.
    imaps = FakeService("127.0.0.13", "imap", tls=server_tls(t.base))
    r.add_backend("b3", "127.0.0.13", tls="yes", ports={
        "imap": imaps.port, "pop3": 0, "lmtp": 0, "submission": 0,
        "sieve": 0})
    for _ in range(50):
        if r.backend("b3")["health"]["checked"] is not None:
            break
        time.sleep(0.1)
    eq(r.backend("b3")["health"]["state"], "ok", "b3 answers over TLS")
    check(any("LOGOUT" in l for l in imaps.lines),
          "the probe spoke IMAP inside TLS: %r" % imaps.lines)
    imaps.close()
    plain = FakeService("127.0.0.13", "imap", port=imaps.port)
    h, _ = wait_health(r, "b3", "failed", 8)
    check("imap" in h["error"], "plain service behind tls = yes: %r" %
          h["error"])
    plain.close()

    # One log line per change, not per round.
    changes = re.findall(r"backend b1: health (\w+) -> (\w+)", r.log())
    check(4 <= len(changes) <= 8, "b1's changes logged once each: %r" %
          changes)
    rc, out, err = r.ctl("status")
    eq(rc, 0, "roostctl status")
    check("failed" in out, "roostctl status shows health:\n" + out)
    rc, out, err = r.ctl("backend", "show", "b2")
    check("failed" in out and "lmtp" in out,
          "backend show has health and error:\n" + out)
    for svc in services.values():
        for s in svc.values():
            s.close()


rt.run(main)
