"""A batch of new users larger than one place_send takes does not hold
roostd's loop on PostgreSQL either.  300 new users looked up while
another new user's batch flies all wait for it to land and are then asked
again at once; more than STORE_PLACE_SEND_MAX (256) of them in one batch
used to be committed with the loop waiting.  With the commit of one of
them made slow (a deferred trigger sleeps 0.4 s in its COMMIT, under the
0.5 s statement bound), lookups of known users go on being answered
during that sleep; every new user gets 200 with the backend the store
holds."""

import json
import threading
import time

import roosttest as rt
from roosttest import check, eq, q

SLOW_S = 0.4
EDGE_S = 0.05
NBULK = 300


def main(t):
    rt.on_pg(t, scenario)


def send_lookups(r, users, socks):
    """Each user's whole request on a connection of its own, before any
    answer is read: they all reach roostd at once."""
    for u, s in zip(users, socks):
        s.sendall(("GET /v1/lookup?user=%s&protocol=imap HTTP/1.1\r\n"
                   "Host: 127.0.0.1\r\n"
                   "Authorization: Bearer %s\r\n"
                   "Connection: close\r\n\r\n" %
                   (q(u), r.admin_token)).encode())


def read_answer(s):
    """(status, JSON body) of the one answer on s (Connection: close)."""
    status, body, _ = rt.read_closed(s)
    return status, json.loads(body) if body else None


def scenario(t, pg, made):
    r = t.roost(start=False, store="postgresql:" + pg.conninfo)
    r.start()
    r.add_backend("b1", "127.0.0.11")
    r.add_backend("b2", "127.0.0.12")
    known = ["known%02d" % i for i in range(20)]
    where = {u: r.lookup_ok(u)["backend"] for u in known}
    bulk = ["bulk%03d" % i for i in range(NBULK)]
    # The first slow user's commit, then the one of the big batch that
    # holds bulk000: two sleeps.
    pg.slow_commit(SLOW_S, "users", "INSERT",
                   "NEW.\"user\" IN ('slow1', 'bulk000')")

    socks = rt.connect_many(r.port, NBULK)

    stop = threading.Event()
    answers, wrong = [], []
    th = threading.Thread(target=rt.lookups_timed,
                          args=(r, known, where, stop, answers, wrong))
    th.start()
    out = {}
    try:
        first = threading.Thread(target=rt.lookup_timed,
                                 args=(r, "slow1", out))
        first.start()
        time.sleep(0.1)             # its batch is in flight by now
        send_lookups(r, bulk, socks)
        sent = time.time()
        got = {u: read_answer(s) for u, s in zip(bulk, socks)}
        first.join(30)
    finally:
        stop.set()
        th.join(30)
        for s in socks:
            s.close()
    eq(wrong, [], "known users answered with their backend")
    eq(out["slow1"][0], 200, "the slow new user: %r" % (out["slow1"],))
    check(sent < out["slow1"][2], "the new users were all sent while the "
          "first slow batch flew (sent %.3f s after its answer)" %
          (sent - out["slow1"][2]))
    bad = dict((u, a) for u, a in got.items() if a[0] != 200)
    eq(bad, {}, "every new user answered 200")
    rows = dict((row[0], row[1]) for row in pg.query(
        "SELECT \"user\", backend FROM users WHERE \"user\" LIKE 'bulk%'"))
    eq(len(rows), NBULK, "a row for each new user")
    eq(dict((u, a[1]["backend"]) for u, a in got.items()), rows,
       "the answers name the stored backends")

    ends = pg.slow_commit_ends()
    eq(len(ends), 2, "two slow commits: slow1's and bulk000's")
    end = ends[1]
    inside = sum(1 for a in answers
                 if end - SLOW_S + EDGE_S < a < end - EDGE_S)
    print("known lookups: %d in all, %d inside the slow commit of the "
          "large batch" % (len(answers), inside))
    check(inside > 0, "known users answered while the large batch's "
          "commit slept (none: the loop waited for it)")


rt.run(main)
