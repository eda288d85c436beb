"""One backend at a time, under load: 50 users log in and out through two
proxies (bounded clients, each session held open about a second) while 200
moves run between the two backends, mostly of users with an open session,
each followed at once by a new login of that user, and a poller asks both
backends' `who` over and over.  No user is ever seen with a session on one backend while the
same session (user and pid) is seen on the other backend both before and
after: that would be two backends at once.  Prints the number of polls,
moves, logins and violations (which must be 0)."""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import check, eq  # noqa: E402

BASE_PORT = 27900
USERS = ["u%d" % i for i in range(1, 51)]
MOVES = 200
MOVERS = 4
CLIENTS = 6
SECONDS_MAX = 150


class WhoRefused(Exception):
    """doveadm answered the who with an error (under load, a tempfail)."""


def sessions(rig, backend):
    """{(user, pid)} on a backend now, from its doveadm HTTP API."""
    res = rig.doveadm_http(backend, "who", {})
    if res[0][0] == "error":
        raise WhoRefused(json.dumps(res[0][1]))
    # 2.3 closes the row array after the first row of several: the
    # others follow it, before the tag.
    rows = list(res[0][1]) + [x for x in res[0][2:-1] if isinstance(x, dict)]
    out = set()
    for row in rows:
        pids = row.get("pids", [])
        if isinstance(pids, str):		# 2.3: "(12 34)"
            pids = pids.strip("()").split()
        for p in pids:
            out.add((row["username"], str(p)))
    return out


def violations(obs):
    """obs: {backend: [(start, end, {(user, pid)})]} in time order.  A
    session seen on A in polls ending before a poll of B that saw the user
    and again in a poll of A starting after it was alive throughout: the
    user was on two backends at once."""
    found = []
    backends = list(obs)
    for a in backends:
        for b in backends:
            if a == b:
                continue
            seen_a = {}			# (user, pid) -> [(start, end)]
            for s, e, ss in obs[a]:
                for k in ss:
                    seen_a.setdefault(k, []).append((s, e))
            for s2, e2, ss in obs[b]:
                users_b = {u for u, _ in ss}
                for (u, pid), spans in seen_a.items():
                    if u not in users_b:
                        continue
                    if any(e1 < s2 for _, e1 in spans) and \
                            any(s3 > e2 for s3, _ in spans):
                        found.append((u, a, pid, b, s2))
    return found


def main(t):
    r = t.roost(move_timeout="10s", move_max_parallel="20",
                events_token=True)
    with riglib.routed_rig(t, r, BASE_PORT, ",".join(USERS),
                           proxies=2) as rig:
        b1, b2 = rig.backends[:2]
        for p in rig.proxies:
            inst = rig.inst(p)
            eq(r.api("POST", "/v1/proxies", {"name": p, "doveadm": {
                "url": inst["doveadm_url"],
                "api_key": inst["doveadm_api_key"]}})[0], 201,
               "register %s" % p)
        for u in USERS:
            eq(riglib.imap_login_from(rig, rig.proxies[0], u)[0], "OK",
               "%s first login" % u)

        stop = threading.Event()
        obs = {b1: [], b2: []}
        stats = {"polls": 0, "ok": 0, "tempfail": 0, "other": 0,
                 "done": 0, "failed": 0}
        lock = threading.Lock()
        errors = []
        refused = []

        def poller():
            while not stop.is_set():
                for b in (b1, b2):
                    s = time.monotonic()
                    try:
                        ss = sessions(rig, b)
                    except WhoRefused as e:
                        # A poll doveadm refused sees nothing: it can
                        # hide no violation, only miss one.
                        refused.append("who %s: %s" % (b, e))
                        continue
                    except Exception as e:	# noqa: BLE001
                        errors.append("who %s: %s" % (b, e))
                        continue
                    obs[b].append((s, time.monotonic(), ss))
                    with lock:
                        stats["polls"] += 1

        def session(rnd, u, hold):
            """One login of u through a proxy, held open a while."""
            proxy = rnd.choice(rig.proxies)
            try:
                c = riglib.Imap(rig, proxy, timeout=20,
                                source=riglib.fresh_source())
                st = c.login(u)
                if st[0] == "OK":
                    c.cmd("NOOP")
                    time.sleep(hold)
                    c.cmd("LOGOUT")
                    key = "ok"
                elif "UNAVAILABLE" in st[1] or "TEMP" in st[1].upper():
                    key = "tempfail"
                else:
                    key = "other"
                c.close()
            except OSError:
                key = "other"
            with lock:
                stats[key] += 1

        def client(n):
            rnd = random.Random(n)
            while not stop.is_set():
                session(rnd, rnd.choice(USERS), rnd.uniform(0.5, 1.5))

        def active_users():
            """Users with a session in the latest polls of both."""
            out = set()
            for b in (b1, b2):
                if obs[b]:
                    out |= {u for u, _ in obs[b][-1][2]}
            return sorted(out)

        def mover(n):
            # A connection of its own: roosttest's is not for threads.
            conn = rt.Conn(r.port)
            hdr = {"Authorization": "Bearer " + r.admin_token,
                   "Content-Type": "application/json"}

            def call(method, path, body=None):
                st, _, data = conn.request(
                    method, path, json.dumps(body).encode()
                    if body is not None else None, hdr)
                return st, json.loads(data)

            rnd = random.Random(100 + n)
            for _ in range(MOVES // MOVERS):
                if stop.is_set():
                    return
                # Mostly users with an open session: the hard case.
                busy = active_users()
                u = rnd.choice(busy if busy and rnd.random() < 0.8 else
                               USERS)
                cur = call("GET", "/v1/users/" + u)[1]["backend"]
                st, js = call("POST", "/v1/moves", {
                    "user": u, "backend": b2 if cur == b1 else b1})
                if st != 202:		# a move of u already running
                    continue
                mid = js["move"]["id"]
                # The user's mail client logs in again at once, as one
                # does after being cut off.
                threading.Thread(target=session, args=(
                    random.Random(mid), u, 1.0), daemon=True).start()
                for _ in range(400):
                    st, m = call("GET", "/v1/moves/%d" % mid)
                    if m["state"] in ("done", "failed"):
                        with lock:
                            stats[m["state"]] += 1
                        break
                    time.sleep(0.05)
                # Spread the moves over about half a minute of logins.
                time.sleep(rnd.uniform(0.2, 0.8))

        threads = [threading.Thread(target=poller, daemon=True)]
        threads += [threading.Thread(target=client, args=(i,), daemon=True)
                    for i in range(CLIENTS)]
        movers = [threading.Thread(target=mover, args=(i,), daemon=True)
                  for i in range(MOVERS)]
        t0 = time.monotonic()
        for th in threads + movers:
            th.start()
        for th in movers:
            th.join(max(1, SECONDS_MAX - (time.monotonic() - t0)))
        stop.set()
        for th in threads:
            th.join(30)
        took = time.monotonic() - t0

        bad = violations(obs)
        print("%.0f s: %d polls of who, %d moves done, %d failed, logins "
              "%d ok, %d temporary failures, %d other; violations: %d" %
              (took, stats["polls"], stats["done"], stats["failed"],
               stats["ok"], stats["tempfail"], stats["other"], len(bad)))
        check(not errors, "who polls failed: %r" % errors[:3])
        if refused:
            print("%d who polls refused by doveadm, the first: %s" %
                  (len(refused), refused[0]))
        check(len(refused) <= stats["polls"] // 20, "doveadm refused %d "
              "of %d who polls: %r" % (len(refused), stats["polls"],
                                       refused[:3]))
        eq(len(bad), 0, "no user on two backends at once; the first: %r" %
           bad[:10])
        check(stats["done"] >= MOVES * 0.8, "most of the %d moves ran "
              "(%d done, %d failed)" % (MOVES, stats["done"],
                                       stats["failed"]))
        check(stats["polls"] >= 500, "the backends were polled throughout")
        check(stats["ok"] >= 300, "the clients logged in throughout")


rt.run(main)
