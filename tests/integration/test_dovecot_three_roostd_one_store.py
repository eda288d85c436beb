"""Three roostd on one PostgreSQL store behind two real Dovecot proxies that
list all three URLs: 1000 new users looked up at once through random
instances each get one backend, the same from every instance and in the
database; a pin made through one instance moves the next login, which the
proxy asks of another; with the first instance killed (-9), logins go on
through the others and land where the store says."""
import json
import os
import random
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq, q, wait_for  # noqa: E402

BASE_PORT = 28000
NEW = 1000
USERS = ["u1", "u2", "u3", "u4"]


def place_in_parallel(roosts, names):
    """Each name looked up once through a random instance, 8 threads at
    once; the backend each answer named."""
    got, errors, lock = {}, [], threading.Lock()
    todo = list(names)
    rnd = random.Random(7)
    plan = [(u, rnd.choice(roosts)) for u in todo]

    def worker(part):
        conns = {}
        try:
            for u, r in part:
                c = conns.setdefault(r.port, rt.Conn(r.port))
                st, _, body = c.request(
                    "GET", "/v1/lookup?user=%s&protocol=imap" % q(u),
                    headers={"Authorization": "Bearer " + r.admin_token})
                with lock:
                    if st == 200:
                        got[u] = json.loads(body)["backend"]
                    else:
                        errors.append((u, st, body[:200]))
        finally:
            for c in conns.values():
                c.close()
    threads = [threading.Thread(target=worker, args=(plan[i::8],))
               for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    return got, errors


def main(t):
    rt.on_pg(t, scenario)


def scenario(t, pg, made):
    store = "postgresql:" + pg.conninfo
    r1, r2, r3 = (t.roost(store=store, events_token=(i == 0))
                  for i in range(3))
    roosts = [r1, r2, r3]
    urls = [r.url for r in roosts]
    with riglib.routed_rig(t, r1, BASE_PORT, ",".join(USERS), proxies=2,
                           roost_urls=urls) as rig:
        for r in (r2, r3):
            wait_for("%s sees the backends" % r.url, lambda r=r: sorted(
                b["name"] for b in r.backends()) == sorted(rig.backends))

        names = ["new%04d" % i for i in range(NEW)]
        got, errors = place_in_parallel(roosts, names)
        check(not errors, "%d lookups failed, e.g. %r" % (len(errors),
                                                          errors[:3]))
        eq(len(got), NEW, "every new user answered")
        rows = dict((u, b) for u, b in pg.query(
            'SELECT "user", backend FROM users WHERE "user" LIKE \'new%\''))
        eq(len(rows), NEW, "one row per new user in the database")
        wrong = [u for u in names if rows[u] != got[u]]
        check(not wrong, "%d answers differ from the database, e.g. %r" %
              (len(wrong), [(u, got[u], rows[u]) for u in wrong[:3]]))
        for r in roosts:
            sample = random.Random(r.port).sample(names, 100)
            diff = [u for u in sample
                    if r.lookup_ok(u)["backend"] != rows[u]]
            check(not diff, "%s answers %d of 100 users differently, e.g. "
                  "%r" % (r.url, len(diff), diff[:3]))

        # A pin through r2; the proxies ask r1 first.
        u = "u1"
        mid, msg = riglib.unique_message(subject="before", to=u)
        st, line = riglib.imap_append(rig, "p1", u, msg)
        eq(st, "OK", "APPEND before the pin (%s)" % line)
        old = r1.user(u)["backend"]
        new = [b for b in rig.backends if b != old][0]
        rt.status(r2.api("PUT", "/v1/users/" + q(u), {"backend": new}), 200,
                  "pin %s to %s through the second instance" % (u, new))
        wait_for("the first instance has the pin", lambda: r1.user(u)[
            "backend"] == new)
        mid2, msg2 = riglib.unique_message(subject="after", to=u)
        st, line = riglib.imap_append(rig, "p2", u, msg2)
        eq(st, "OK", "APPEND after the pin (%s)" % line)
        eq(riglib.where_is_message(rig, u, mid2), {old: 0, new: 1},
           "the login after the pin landed on %s" % new)

        # The first URL dies: the proxies go on with the others.
        check(r1.kill() != 0, "kill -9 of the first instance")
        for p in ("p1", "p2"):
            for v in USERS[1:]:
                mid3, msg3 = riglib.unique_message(subject="later", to=v)
                st, line = riglib.imap_append(rig, p, v, msg3)
                eq(st, "OK", "%s through %s with r1 dead (%s)" % (v, p,
                                                                 line))
                want = r2.user(v)["backend"]
                eq(riglib.where_is_message(rig, v, mid3)[want], 1,
                   "%s's mail on %s, where the store has it" % (v, want))
        r2.secrets_absent(pg.password)
        r3.secrets_absent(pg.password)


rt.run(main)
