"""A flush of the replication queue larger than one sent transaction
takes does not hold roostd's loop on PostgreSQL.  roostd with replication
on and fake doveadm backends, 1150 users placed and synced once; then a
change event for one user, whose queue entry's commit is made slow (a
deferred trigger sleeps 0.4 s in its COMMIT, under the 0.5 s statement
bound), and while it flies events for the 1150 others, all at once: more
than STORE_SEND_MAX (1024) entries for the next flush, which used to be
committed with the loop waiting.  With the commit of the flush that holds
one of them slow too, lookups of known users go on being answered during
that sleep; every event gets 204 once its entry is stored, and every
user's sync reaches its backend."""

import base64
import json
import resource
import time
from collections import Counter

import roosttest as rt
from roosttest import check, eq, q, status, wait_for
from fakedoveadm import add_fake_backends

KEY = "fake-doveadm-key-big-flush-5120"
SLOW_S = 0.4
EDGE_S = 0.05
NBURST = 1150
FIRST = "first"


def main(t):
    rt.on_pg(t, scenario)


def queued(r):
    js = status(r.api("GET", "/v1/replication"), 200, "replication")
    return sum(js["queued"].values()) + js["running"]


def place(r, users):
    """Each user looked up (placed if new) on one keep-alive connection:
    {user: backend}."""
    return {u: r.lookup_ok(u)["backend"] for u in users}


def syncs(fakes):
    """How many syncs each (backend, user) got so far."""
    n = Counter()
    for b, f in fakes.items():
        with f.lock:
            for cmd, params in f.calls:
                if cmd != "sync":
                    continue
                u = params.get("user")
                for x in (u if isinstance(u, list) else [u]):
                    n[(b, x)] += 1
    return n


def event_request(r, backend, user):
    """One mail_delivery_finished event as Dovecot's exporter POSTs it,
    on a connection of its own (Connection: close)."""
    body = json.dumps({"event": "mail_delivery_finished", "hostname": "vm",
                       "fields": {"user": user, "rcpt_to": user}}).encode()
    auth = base64.b64encode(("roost:" + r.events_token).encode()).decode()
    return ("POST /v1/events/dovecot/%s HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            "Authorization: Basic %s\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: %d\r\n"
            "Connection: close\r\n\r\n" %
            (q(backend), auth, len(body))).encode() + body


def read_status(s):
    """The status of the one answer on s, and when it came."""
    status, _, at = rt.read_closed(s)
    return status, at


def scenario(t, pg, fakes):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * NBURST:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(hard, 4 * NBURST), hard))
    r = t.roost(start=False, events_token=True, replication="yes",
                store="postgresql:" + pg.conninfo)
    r.start()
    add_fake_backends(r, fakes, KEY)
    known = ["known%02d" % i for i in range(20)]
    burst = ["burst%04d" % i for i in range(NBURST)]
    t0 = time.monotonic()
    where = place(r, known + [FIRST] + burst)
    print("%d users placed in %.1f s" % (len(where),
                                         time.monotonic() - t0))
    wait_for("the first syncs", lambda: queued(r) == 0, 120)
    # Each user's entry is stored with nothing queued: an event's entry
    # then turns priority from NULL to a value.
    wait_for("every entry stored idle", lambda: pg.query(
        "SELECT count(*) FROM repl WHERE priority IS NULL AND"
        " (\"user\" LIKE 'burst%%' OR \"user\" = '%s')" % FIRST)[0][0] ==
        str(NBURST + 1), 30)
    before = syncs(fakes)
    # The commit that queues FIRST's entry, then the one that queues the
    # last burst user's (the last of them to sync, so that its entry is
    # still queued when its flush is made): two sleeps, one per commit.
    slow = burst[-1]
    pg.slow_commit(SLOW_S, "repl", "UPDATE",
                   "OLD.priority IS NULL AND NEW.priority IS NOT NULL AND"
                   " NEW.\"user\" IN ('%s', '%s')" % (FIRST, slow))
    reqs = [event_request(r, where[u], u) for u in burst]
    socks = rt.connect_many(r.port, NBURST)
    first = rt.connect_many(r.port, 1)[0]

    start_ms = int(time.time() * 1000)
    with rt.looking_up(r, known, where) as (answers, wrong):
        try:
            time.sleep(0.2)
            first.sendall(event_request(r, where[FIRST], FIRST))
            time.sleep(0.1)         # its flush is in flight by now
            for s, req in zip(socks, reqs):
                s.sendall(req)
            sent = time.time()
            got = [read_status(s) for s in socks]
            first_got = read_status(first)
        finally:
            for s in socks + [first]:
                s.close()
        time.sleep(0.2)
    eq(wrong, [], "known users answered with their backend")
    eq(first_got[0], 204, "the first event")
    check(sent < first_got[1], "the burst was all sent while the first "
          "flush flew (sent %.3f s after its answer)" %
          (sent - first_got[1]))
    bad = Counter(st for st, _ in got if st != 204)
    eq(dict(bad), {}, "every event answered 204")
    # Each event is answered once its entry is stored: all are, queued
    # at the event (the entries of the first syncs are older).
    eq(pg.query("SELECT count(*) FROM repl WHERE \"user\" LIKE 'burst%%'"
                " AND queued >= %d" % start_ms)[0][0], str(NBURST),
       "every burst user's entry stored when its event was answered")

    ends = pg.slow_commit_ends()
    eq(len(ends), 2, "two slow commits: %s's flush and %s's" %
       (FIRST, slow))
    end = ends[1]
    inside = sum(1 for a in answers
                 if end - SLOW_S + EDGE_S < a < end - EDGE_S)
    print("known lookups: %d in all, %d inside the slow commit of the "
          "burst's flush; %d events answered in %.2f s" %
          (len(answers), inside, len(got), max(a for _, a in got) - sent))
    check(inside > 0, "known users answered while the burst's flush "
          "slept in its commit (none: the loop waited for it)")

    wait_for("the queue empty", lambda: queued(r) == 0, 120)
    after = syncs(fakes)
    missed = [u for u in burst + [FIRST]
              if after[(where[u], u)] <= before[(where[u], u)]]
    eq(missed, [], "every user's sync after its event reached its backend")
    wait_for("every entry stored done", lambda: pg.query(
        "SELECT count(*) FROM repl WHERE priority IS NULL AND fails = 0"
        " AND (\"user\" LIKE 'burst%%' OR \"user\" = '%s')" % FIRST)[0][0] ==
        str(NBURST + 1), 30)


rt.run(main)
