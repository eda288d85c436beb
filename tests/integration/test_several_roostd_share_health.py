"""Three roostd share one PostgreSQL store (pgtmp, fake mail services, no
Dovecot), and every one probes every backend; each backend's health
verdict is written by one instance only, the holder of its role
"health:<backend>".  A backend whose IMAP service starts saying BYE is
failed by that holder alone (its log, and the origin of every stored
verdict of it, name no other instance), and every instance then routes
its users elsewhere, all three answering each user alike.  kill -9 of
that holder: a survivor takes the role within seconds (the time is
printed) and its verdict brings the backend back once it greets again."""

import time

import roosttest as rt
from roosttest import check, eq, status
from fakemail import FakeService

N = 60
BOUND = 20	# seconds: a failure bound, not a speed claim


def state(r):
    return status(r.api("GET", "/v1/status"), 200, "status")["roles"]


def verdict_origins(pg, backend):
    return {o for (o,) in pg.query(
        "SELECT DISTINCT origin FROM changes WHERE kind = 'health' AND "
        "key = '%s'" % backend)}


def services():
    return {n: FakeService(a, "imap") for n, a in
            (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
             ("b3", "127.0.0.13"))}


def main(t):
    rt.on_pg(t, scenario, services)


def scenario(t, pg, services):
    store = "postgresql:" + pg.conninfo
    rs = [t.roost(store=store, probe_interval="1s", probe_timeout="1s",
                  probe_rise="2", probe_fall="2") for _ in range(3)]
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12"),
                 ("b3", "127.0.0.13")):
        rs[0].add_backend(n, a, ports={
            "imap": services[n].port, "pop3": 0, "lmtp": 0,
            "submission": 0, "sieve": 0})
    h1 = rt.wait_for("role health:b1 held",
                     lambda: rt.role_holder(rs, "health:b1"))
    for r in rs:
        rt.wait_for("b1 ok as %s sees it" % r.tmp, lambda r=r: r.backend(
            "b1")["health"]["state"] == "ok", BOUND)
    names = ["u%02d@example.org" % i for i in range(N)]
    first = {u: rs[i % 3].lookup_ok(u)["backend"] for i, u in
             enumerate(names)}
    on_b1 = [u for u, b in first.items() if b == "b1"]
    check(len(on_b1) > 5, "b1 has users (%d)" % len(on_b1))

    # b1 says BYE: every instance's probes see it, one judges.
    services["b1"].set_mode("bye")
    for r in rs:
        rt.wait_for("b1 failed as %s sees it" % r.tmp, lambda r=r: r.backend(
            "b1")["health"]["state"] == "failed", BOUND)
        check(not r.backend("b1")["health"]["routed"],
              "failed b1 not handed out by %s" % r.tmp)
    judges = [r for r in rs if "backend b1: health ok -> failing" in r.log()]
    eq(judges, [h1], "only the holder of health:b1 judged it")
    i1 = state(h1)["instance"]
    eq(verdict_origins(pg, "b1"), {i1},
       "every stored verdict of b1 came from its holder")
    for u in on_b1:
        answers = {r.lookup_ok(u)["backend"] for r in rs}
        check(len(answers) == 1 and "b1" not in answers,
              "%s: every instance answers one backend, not b1: %r" %
              (u, answers))

    # kill -9 of the holder; b1 greets again: the heir's verdict counts.
    t_kill = time.monotonic()
    h1.kill()
    survivors = [r for r in rs if r is not h1]
    heir = rt.wait_for("a survivor takes role health:b1", lambda:
                       rt.role_holder(survivors, "health:b1"), BOUND)
    took = time.monotonic() - t_kill
    print("role health:b1 taken over %.2f s after kill -9 of its holder" %
          took)
    check(took < 10, "taken over within 10 s (%.2f s)" % took)
    services["b1"].set_mode("ok")
    for r in survivors:
        rt.wait_for("b1 ok again as %s sees it" % r.tmp, lambda r=r:
                    r.backend("b1")["health"]["state"] == "ok", BOUND)
    judges = [r for r in survivors if "backend b1: health failed -> ok"
              in r.log()]
    eq(judges, [heir], "only the heir judged b1 back")
    eq(verdict_origins(pg, "b1"), {i1, state(heir)["instance"]},
       "b1's verdicts came from its two holders, one after the other")


rt.run(main)
