"""One roostd per SQLite store: a second roostd started on the same database
file refuses to run and names the pid that holds it, the first keeps working,
and once the first has exited (also by kill -9) a new one starts and sees
everything the first stored."""

import os
import signal
import time

import roosttest as rt
from roosttest import check, eq


def refused(second, holder_pid, what):
    """second must exit non-zero on its own, naming the holder."""
    second.start(wait=False)
    rc = second.wait_exit(timeout=10)
    check(rc != 0, "%s: second roostd exits non-zero (got %r)" % (what, rc))
    want = "store in use by pid %d" % holder_pid
    check(want in second.log(), "%s: its stderr says %r:\n%s"
          % (what, want, second.log_tail()))


def main(t):
    first = t.roost()
    first.add_backend("b1", "127.0.0.11")
    first.add_backend("b2", "127.0.0.12")
    alice = first.lookup_ok("alice@example.com")

    # Its own port and log, the first one's database file.
    second = t.roost(start=False)
    second.write_config(store="sqlite:" + first.db_path)
    refused(second, first.proc.pid, "while the first runs")
    with open(first.db_path + ".lock") as f:
        eq(f.read().strip(), str(first.proc.pid), "the lock file holds the pid")

    # The first is undisturbed and still the only writer.
    eq(first.lookup_ok("alice@example.com"), alice, "first still answers")
    other = "b1" if alice["backend"] == "b2" else "b2"
    rt.status(first.api("PUT", "/v1/users/alice@example.com",
                        {"backend": other}), 200, "pin through the first")
    bob = first.lookup_ok("bob@example.com")

    # Clean exit: the second starts and sees what the first stored.
    eq(first.kill(signal.SIGTERM), 0, "first stops cleanly")
    second.start()
    eq(second.lookup_ok("alice@example.com")["backend"], other,
       "the pin made through the first")
    eq(second.lookup_ok("bob@example.com"), bob, "bob as the first placed him")

    # kill -9 leaves the lock file behind, but not the lock.
    pid = second.proc.pid
    second.kill()
    check(os.path.exists(first.db_path + ".lock"), "lock file left behind")
    t0 = time.monotonic()
    first.start()
    print("restart after kill -9 of pid %d: %.2fs" % (pid,
          time.monotonic() - t0))
    eq(first.lookup_ok("bob@example.com"), bob, "bob after kill -9")
    refused(second, first.proc.pid, "after the restart")


rt.run(main)
