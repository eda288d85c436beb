"""backend flush moves every user of a backend to its next choice in its
pool, each through a move that kicks first, at most move_max_parallel at
once; a flush killed with roostd goes on after the restart; rebalance
moves users (not pinned ones) back to their hashed backend, bounded by
--max; roostctl drives both and waits for the end."""

import time

import roosttest as rt
from roosttest import check, eq, error
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-flush-0001"
N = 900


def idle(r, seconds=60):
    """Wait until no job runs and no move is open; the most moves seen
    under way at once."""
    most, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        st, js = r.api("GET", "/v1/moves?state=open&limit=10000")
        eq(st, 200, "moves")
        running = [m for m in js["moves"] if m["state"] != "queued"]
        most = max(most, len(running))
        if not js["jobs"] and js["open"] == 0:
            return most
        time.sleep(0.05)
    raise rt.Failure("jobs still running after %ss" % seconds)


def main(t):
    fakes = {n: FakeDoveadm(a, KEY) for n, a in
             (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
              ("b3", "127.0.0.13"), ("p1", "127.0.0.1"))}
    r = t.roost(move_max_parallel="50", move_timeout="20s")
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
                 ("b3", "127.0.0.13")):
        r.add_backend(n, a, doveadm={"url": fakes[n].url, "api_key": KEY})
    eq(r.api("POST", "/v1/proxies", {"name": "p1", "doveadm": {
        "url": fakes["p1"].url, "api_key": KEY}})[0], 201, "proxy")
    conn = rt.Conn(r.port)
    hdr = {"Authorization": "Bearer " + r.admin_token}
    for i in range(N):
        st, _, _ = conn.request("GET", "/v1/lookup?user=u%04d&protocol=imap"
                                % i, headers=hdr)
        eq(st, 200, "place u%04d" % i)
    before = {u["user"]: u["backend"] for u in r.all_users()}
    on_b1 = sorted(u for u, b in before.items() if b == "b1")
    check(len(on_b1) > 200, "b1 has users (%d)" % len(on_b1))
    for u in on_b1[:40]:
        fakes["b1"].sessions[u] = 1

    t0 = time.monotonic()
    st, js = r.api("POST", "/v1/backends/b1/flush")
    eq(st, 202, "flush accepted: %r" % js)
    eq(js["users"], len(on_b1), "the flush counts b1's users")
    error(r.api("POST", "/v1/backends/b1/flush"), 409, "name",
          "a second flush of b1 while one runs")
    most = idle(r)
    took = time.monotonic() - t0
    print("flush of %d users: %.2f s, %.0f users/s, at most %d at once" %
          (len(on_b1), took, len(on_b1) / took, most))
    check(most <= 50, "at most move_max_parallel under way (%d)" % most)
    after = {u["user"]: u for u in r.all_users()}
    eq(r.backend("b1")["users"], 0, "b1 is empty")
    check(all(after[u]["backend"] in ("b2", "b3") and not after[u]["pinned"]
              for u in on_b1), "every b1 user on b2 or b3, not pinned")
    eq({u: after[u]["backend"] for u in before if before[u] != "b1"},
       {u: b for u, b in before.items() if b != "b1"}, "nobody else moved")
    kicked = {p["mask"][0] for p in fakes["b1"].commands("kick")}
    check(set(on_b1[:40]) <= kicked, "users with sessions were kicked")
    eq(fakes["b1"].sessions, {}, "no session left on b1")
    st, js = r.api("GET", "/v1/moves?limit=10000")
    flushed = [m for m in js["moves"] if m["reason"] == "flush"]
    eq((len(flushed), {m["state"] for m in flushed}), (len(on_b1), {"done"}),
       "one done move per user")

    # Rebalance with --max: 30 users back to their hashed backend b1.
    rc, out, err = r.ctl("rebalance", "--max", "30")
    eq(rc, 0, "roostctl rebalance --max 30 (%s)" % err)
    now = {u["user"]: u["backend"] for u in r.all_users()}
    back = [u for u in on_b1 if now[u] == "b1"]
    eq(len(back), 30, "exactly 30 moved back")
    rc, out, err = r.ctl("rebalance")
    eq(rc, 0, "roostctl rebalance (%s)" % err)
    eq({u["user"]: u["backend"] for u in r.all_users()}, before,
       "every user on its hashed backend again")

    # A flush killed with roostd goes on after the restart.
    on_b2 = sorted(u for u, b in before.items() if b == "b2")
    for u in on_b2[:5]:
        fakes["b2"].sessions[u] = 1
        fakes["b2"].sticky.add(u)
    rc, out, err = r.ctl("backend", "flush", "b2", "--no-wait")
    eq(rc, 0, "roostctl backend flush --no-wait (%s)" % err)
    time.sleep(1.0)
    r.restart()
    check("flush of b2 taken up again" in r.log(), "the job is taken up")
    for u in on_b2[:5]:
        fakes["b2"].sticky.discard(u)
        fakes["b2"].sessions.pop(u, None)
    rc, out, err = r.ctl("backend", "flush", "b2")
    check(rc != 0 and "under way" in err, "a flush runs already: %r" % err)
    idle(r)
    eq(r.backend("b2")["users"], 0, "b2 flushed after the restart")
    st, js = r.api("GET", "/v1/moves?limit=10000")
    eq({m["state"] for m in js["moves"]}, {"done"},
       "every move done, none half done")
    r.secrets_absent(KEY)
    for f in fakes.values():
        f.close()


rt.run(main)
