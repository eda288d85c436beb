"""Secure by default: with listen on an address other than loopback, roostd
refuses to start (and `roostd -n` says why) unless lookups need a token or
lookup_open = yes says the network is trusted; a SIGHUP to a file that
would open lookups off loopback is refused and the running config kept."""

import signal
import time

import roosttest as rt
from roosttest import check, eq, error


def main(t):
    r = t.roost(start=False)
    port = r.port

    # Not loopback, no token, not declared open: refused, and why.
    for addr in ("0.0.0.0:%d" % port, "[::]:%d" % port,
                 "roost.example.com:%d" % port):
        r.write_config(listen=addr)
        rc, out = r.check_config()
        check(rc != 0, "roostd -n accepted %s without a lookup token" % addr)
        check("is not a loopback address" in out and
              "lookup_token_file" in out and "lookup_open" in out,
              "roostd -n says why for %s: %r" % (addr, out))
    # Starting for real fails the same way, before anything listens.
    r.write_config(listen="0.0.0.0:%d" % port)
    r.start(wait=False)
    rc = r.wait_exit(10)
    check(rc != 0, "roostd started on 0.0.0.0 with open lookups")
    check("is not a loopback address" in r.log(), "the log says why")

    # Either way out is accepted by the check (-n binds nothing).
    r.write_config(listen="0.0.0.0:%d" % port, lookup_open="yes")
    eq(r.check_config(), (0, "configuration OK\n"), "lookup_open = yes")
    r.write_config(listen="0.0.0.0:%d" % port, lookup_token=True)
    eq(r.check_config(), (0, "configuration OK\n"), "with a lookup token")
    r.write_config(lookup_open="maybe")
    rc, out = r.check_config()
    check(rc != 0 and "lookup_open" in out, "lookup_open = maybe refused")

    # Loopback stays open by default.
    r.write_config()
    r.start()
    r.add_backend("b1", "127.0.0.11")
    eq(r.lookup_ok("alice", token=None)["backend"], "b1",
       "loopback lookup without a token")

    # A reload to a file that would open lookups off loopback is refused
    # as a whole: the running config (and its lookup token) stays.
    r.kill(signal.SIGKILL)
    r.write_config(lookup_token=True)
    r.start()
    error(r.lookup("alice", token=None), 401, None, "token required")
    r.write_config(listen="0.0.0.0:%d" % port)
    r.kill(signal.SIGHUP)
    for _ in range(100):
        if "keeping the running configuration" in r.log():
            break
        time.sleep(0.05)
    check("is not a loopback address" in r.log() and
          "keeping the running configuration" in r.log(),
          "the refused reload is logged")
    error(r.lookup("alice", token=None), 401, None, "still token required")
    eq(r.lookup_ok("alice", token="lookup")["backend"], "b1",
       "lookup with the token after the refused reload")

    # [::1] is loopback too.
    r.kill(signal.SIGKILL)
    r.write_config(listen="[::1]:%d" % port)
    r.start(wait=False)
    time.sleep(0.5)
    check(r.alive(), "[::1] is loopback: roostd runs")
    r.kill(signal.SIGTERM)


rt.run(main)
