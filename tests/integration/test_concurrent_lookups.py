"""One backend at a time under load: many proxies asking for the same new
users at once, while an admin drains and changes backends, all get one
answer per user, and the store holds exactly that answer."""

import json
import random
import threading

import roosttest as rt
from roosttest import Conn, check, eq, q, status

CLIENTS = 8
USERS = 400


def main(t):
    r = t.roost()
    for i in range(1, 5):
        r.add_backend("b%d" % i, "127.0.0.%d" % (10 + i))
    names = ["c%04d@example.net" % i for i in range(USERS)]
    auth = {"Authorization": "Bearer " + r.admin_token}
    answers = [dict() for _ in range(CLIENTS)]
    errors = []
    go = threading.Barrier(CLIENTS + 1)

    def client(k):
        order = list(names)
        random.Random(k).shuffle(order)
        c = Conn(r.port)
        try:
            go.wait(30)
            for u in order:
                st, _, body = c.request("GET", "/v1/lookup?user=%s&protocol="
                                        "imap" % q(u), headers=auth)
                if st != 200:
                    errors.append("%s: HTTP %d %r" % (u, st, body[:200]))
                    return
                answers[k][u] = json.loads(body)["backend"]
        except Exception as e:	# reported below, not lost in a thread
            errors.append("client %d: %r" % (k, e))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in
               range(CLIENTS)]
    for th in threads:
        th.start()
    go.wait(30)
    # Admin changes while the lookups run: b4 stops taking new users.
    r.patch_backend("b4", state="drain")
    r.patch_backend("b3", weight=300)
    for th in threads:
        th.join(120)
        check(not th.is_alive(), "a lookup client hung")
    check(not errors, "lookup errors: %s" % errors[:5])

    for u in names:
        seen = {answers[k][u] for k in range(CLIENTS)}
        eq(len(seen), 1, "one backend for %s across %d clients" %
           (u, CLIENTS))
    stored = {x["user"]: x["backend"] for x in r.all_users()}
    eq(stored, {u: answers[0][u] for u in names},
       "the store holds exactly the answers given")
    eq(sum(b["users"] for b in r.backends()), USERS, "backend user counts")
    eq(status(r.api("GET", "/v1/status"), 200, "status")["users"], USERS,
       "status user count")
    r.restart()
    for u in names[::7]:
        eq(r.lookup_ok(u)["backend"], answers[0][u], "%s after kill -9" % u)


rt.run(main)
