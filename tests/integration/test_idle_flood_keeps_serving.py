"""More idle connections than roostd may accept, or has descriptors for, do not
take it down: it stays idle (CPU, log), keep-alive lookups go on, queued
connections are served once the idle ones close, and a connection that never
completes its request is closed after request_timeout (10 s) while an idle
keep-alive connection keeps its longer timeout."""
import http.client
import json
import os
import resource
import socket
import subprocess
import time

import roosttest as rt
from roosttest import check, eq

NOFILE = 64		# roostd's descriptor limit (soft and hard)
FLOOD = 100		# idle sockets: more than NOFILE
CPU_WINDOW = 3.0	# seconds of CPU measured while flooded
TICK = os.sysconf("SC_CLK_TCK")


def start_with_nofile(r, nofile):
    """Start roostd as t.roost() would, but with RLIMIT_NOFILE lowered."""
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    r.logf = open(r.log_path, "ab")
    r.proc = subprocess.Popen([rt.ROOSTD, "-d", "-f", r.conf_path],
                              stdin=subprocess.DEVNULL, stdout=r.logf,
                              stderr=r.logf, preexec_fn=lower)
    r.wait_healthy()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15; fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / TICK


def log_lines(r):
    return len(r.log().splitlines())


def lookup_on(c, user, what):
    """A lookup on one keep-alive connection (never silently reopened)."""
    c.request("GET", "/v1/lookup?user=%s&protocol=imap" % user)
    resp = c.getresponse()
    body = resp.read()
    eq(resp.status, 200, what)
    return json.loads(body)


def open_idle(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            # A full accept backlog may drop the SYN: an idle client all
            # the same.
            pass
        socks.append(s)
    return socks


def flood(t, r, what):
    r.add_backend("b1", "127.0.0.11")
    ka = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
    before = lookup_on(ka, "alice", what + ": keep-alive lookup before")
    lines0 = log_lines(r)

    idle = open_idle(r.port, FLOOD)
    # A client that arrives while roostd is full: queued, not refused.
    late = http.client.HTTPConnection("127.0.0.1", r.port, timeout=15)
    late.request("GET", "/v1/health")

    cpu0 = cpu_seconds(r.proc.pid)
    time.sleep(CPU_WINDOW)
    used = cpu_seconds(r.proc.pid) - cpu0
    check(used < 0.10 * CPU_WINDOW, "%s: roostd used %.2f s of CPU in %.0f s "
          "with %d idle connections (want < 10%%)" % (what, used, CPU_WINDOW,
                                                     FLOOD))
    check(r.alive(), what + ": roostd still running")
    added = log_lines(r) - lines0
    check(added <= 4, "%s: %d log lines during the flood (want a few):\n%s" %
          (what, added, r.log_tail(10)))

    for i in range(50):
        got = lookup_on(ka, "alice", what + ": keep-alive lookup %d" % i)
        eq(got["backend"], before["backend"], what + ": same answer")

    for s in idle:
        s.close()
    t0 = time.monotonic()
    resp = late.getresponse()
    resp.read()
    eq(resp.status, 200, what + ": the queued client is answered")
    check(time.monotonic() - t0 < 5, what + ": the queued client is "
          "answered soon after the idle ones close")
    late.close()
    fresh = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
    lookup_on(fresh, "bob", what + ": a new connection is served")
    fresh.close()
    ka.close()


def main(t):
    # The default limit, sized from the descriptors roostd may use.
    r = t.roost(start=False)
    start_with_nofile(r, NOFILE)
    flood(t, r, "default max_connections")
    check("max_connections" in r.log(), "the log says why new connections "
          "wait:\n" + r.log_tail(10))

    # A slow sender that never finishes its request is closed after
    # request_timeout; a keep-alive connection idle as long is not.
    ka = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
    lookup_on(ka, "carol", "keep-alive lookup before idling")
    slow = socket.create_connection(("127.0.0.1", r.port), timeout=30)
    slow.sendall(b"GET /v1/health HTTP/1.1\r\nHost: roost\r\n")
    t0 = time.monotonic()
    try:
        got = slow.recv(100)
    except socket.timeout:
        got = None
    took = time.monotonic() - t0
    check(got == b"", "a request never completed is closed without an "
          "answer (got %r after %.1f s)" % (got, took))
    check(8 <= took <= 14, "closed after request_timeout: %.1f s, want about "
          "10 s" % took)
    slow.close()
    time.sleep(max(0.0, 12 - (time.monotonic() - t0)))
    lookup_on(ka, "carol", "keep-alive connection idle 12 s still answers")
    ka.close()

    # A limit above what the descriptors allow: accept errors pause the
    # listener instead of spinning on "Too many open files".
    r2 = t.roost(start=False, max_connections=1000)
    start_with_nofile(r2, NOFILE)
    flood(t, r2, "max_connections above the descriptor limit")


rt.run(main)
