"""The replication API and its roostctl verbs, with fake doveadm APIs (no
Dovecot): GET /v1/replication has the documented shape; a paused queue
shows a queued user as queued at its priority; 400s name the field and
change nothing; 409 while replication is off; remove, pause and resume do
what they say; syncs that succeed make the replica current, exit 75 backs
off 10 s, exit 2 is rerun 3 times and then "stuck", 67 drops the user;
failback is 409 on a down backend and runs as a job on an up one;
force-failover is audited; every verb's human and --json output and exit
codes (0 ok, 1 refused, 2 usage)."""

import json
import re
import time

import roosttest as rt
from roosttest import check, eq, error, status
from fakedoveadm import FakeDoveadm

KEY = "fake-doveadm-key-repl-7731"
N = 12
STATUS_KEYS = {"enabled", "paused", "queued", "running", "reading_states",
               "failed", "stuck", "waiting", "backoff", "max_conns",
               "oldest_pending_s", "totals", "dispatching"}
TOTALS_KEYS = {"synced", "failed", "events", "events_not_from_backend",
               "events_from_replica", "failovers_refused", "requests_stored",
               "requests_taken"}
USER_KEYS = {"user", "backend", "replica", "replica_current", "failed_over",
             "state", "priority", "last_fast_sync", "last_full_sync",
             "last_success", "last_error", "failures"}


def ok(res, what):
    rc, out, err = res
    if rc != 0:
        raise rt.Failure("%s: exit %d\nstdout: %s\nstderr: %s" %
                         (what, rc, out, err))
    return out


def rc_is(res, want, what):
    rc, out, err = res
    if rc != want:
        raise rt.Failure("%s: exit %d, want %d\nstdout: %s\nstderr: %s" %
                         (what, rc, want, out, err))
    return res


def refused(res, what, field=None, words=None):
    rc, out, err = rc_is(res, 1, what)
    check(err.startswith("roostctl: ") and out == "",
          "%s: the refusal on stderr, nothing on stdout: %r %r" %
          (what, out, err))
    if field is not None:
        check("(field %s)" % field in err, "%s: stderr names (field %s): %r"
              % (what, field, err))
    if words is not None:
        check(words in err, "%s: stderr says %r: %r" % (what, words, err))
    return err


def usage(res, what):
    rc, out, err = rc_is(res, 2, what)
    check(err.strip() != "" and out == "",
          "%s: a usage error on stderr only: %r %r" % (what, out, err))
    return err


def jsout(res, what):
    out = ok(res, what)
    try:
        return json.loads(out)
    except ValueError:
        raise rt.Failure("%s: --json output is not one JSON document: %r" %
                         (what, out[:300]))


def kv(out, label):
    """The value of a "label:   value" line."""
    for line in out.splitlines():
        if line.startswith(label + ":"):
            return line[len(label) + 1:].strip()
    raise rt.Failure("no %r line in:\n%s" % (label, out))


def repl(r):
    js = status(r.api("GET", "/v1/replication"), 200, "GET /v1/replication")
    return js


def ruser(r, user):
    return status(r.api("GET", "/v1/replication/users/" + rt.q(user)), 200,
                  "GET /v1/replication/users/%s" % user)


def wait_for(what, fn, seconds=15):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise rt.Failure("not within %ss: %s" % (seconds, what))


def queue_view(js):
    """What a rejected request must not change."""
    return (js["queued"], js["paused"], js["running"], js["failed"],
            js["stuck"])


def main(t):
    fakes = {n: FakeDoveadm(a, KEY) for n, a in
             (("b1", "127.0.0.11"), ("b2", "127.0.0.12"))}
    r = t.roost(replication="yes", replication_max_conns="4")
    # Pause before any user exists: nothing syncs until resume.
    js = status(r.api("POST", "/v1/replication/pause"), 200, "pause")
    eq(set(js), STATUS_KEYS, "pause answers the status object")
    eq(js["paused"], True, "paused")
    for n, a in (("b1", "127.0.0.11"), ("b2", "127.0.0.12")):
        r.add_backend(n, a, ports={"doveadm": 24245},
                      doveadm={"url": fakes[n].url, "api_key": KEY})
    # b3 is down: failback to it is refused.
    r.add_backend("b3", "127.0.0.13", state="down", weight=0)
    users = ["r%02d" % i for i in range(N)]
    placed = {u: r.lookup_ok(u)["backend"] for u in users}
    check(set(placed.values()) == {"b1", "b2"}, "users on both backends: %r"
          % placed)

    # -- status shape.
    js = repl(r)
    eq(set(js), STATUS_KEYS, "GET /v1/replication keys")
    eq(set(js["queued"]), {"sync", "high", "low", "full"}, "queued keys")
    eq(set(js["totals"]), TOTALS_KEYS, "totals keys")
    eq((js["enabled"], js["paused"], js["running"], js["max_conns"],
        js["dispatching"]), (True, True, 0, 4, True),
       "enabled, paused, nothing running, max_conns, the one dispatching")
    # A new assignment queues a full sync of its new replica, low.
    eq(js["queued"], {"sync": 0, "high": 0, "low": N, "full": 0},
       "every new user queued low for its first (full) sync")
    check(all(isinstance(js[k], int) for k in STATUS_KEYS - {
        "enabled", "paused", "queued", "totals", "dispatching"}),
        "counts are integers")

    # -- the user object carries the stored replica.
    u0 = users[0]
    home = placed[u0]
    other = "b2" if home == "b1" else "b1"
    uo = r.user(u0)
    eq((uo["backend"], uo["replica"], uo["replica_current"],
        uo["failed_over"]), (home, other, False, False),
       "GET /v1/users: replica stored, not current yet, not failed over")

    # -- a user queued shows as queued, at the priority asked.
    ju = ruser(r, u0)
    eq(set(ju), USER_KEYS, "replication user keys (no next_try when due)")
    eq((ju["user"], ju["backend"], ju["replica"], ju["replica_current"],
        ju["state"], ju["priority"], ju["last_success"], ju["failures"]),
       (u0, home, other, False, "queued", "low", None, 0),
       "a new user is queued low")
    js = status(r.api("POST", "/v1/replication/users/" + u0,
                      {"priority": "sync"}), 202, "queue sync")
    eq(js, {"user": u0, "priority": "sync", "full": False}, "202 body")
    ju = ruser(r, u0)
    eq((ju["state"], ju["priority"]), ("queued", "sync"),
       "queued again at sync priority")
    eq(repl(r)["queued"], {"sync": 1, "high": 0, "low": N - 1, "full": 0},
       "one entry per user: it left low for sync")
    # A lower priority does not lower a queued user.
    eq(status(r.api("POST", "/v1/replication/users/" + u0,
                    {"priority": "full", "full": True}), 202,
              "queue full")["priority"], "full", "202 echoes the request")
    eq(ruser(r, u0)["priority"], "sync", "still at sync priority")
    eq(repl(r)["queued"]["sync"], 1, "still one sync entry")

    # -- 400s name the field and change nothing.
    before = queue_view(repl(r))
    ubefore = ruser(r, users[1])
    for body, field in (({"priority": "urgent"}, "priority"),
                        ({"priority": 1}, "priority"),
                        ({"full": "yes"}, "full"),
                        ({"full": 1}, "full"),
                        ({"speed": "fast"}, "speed")):
        for path in ("/v1/replication/users/" + users[1],
                     "/v1/replication/all"):
            error(r.api("POST", path, body), 400, field,
                  "POST %s %r" % (path, body))
    for path in ("/v1/replication/users/" + users[1], "/v1/replication/all"):
        error(r.api("POST", path, raw=b"{\"priority\": "), 400, "body",
              "POST %s malformed JSON" % path)
        error(r.api("POST", path, raw=b"[]"), 400, "body",
              "POST %s a body that is not an object" % path)
    error(r.api("POST", "/v1/replication/users/" + "x" * 300, {}), 400,
          "user", "an over-long user name")
    eq(queue_view(repl(r)), before, "the 400s changed nothing")
    eq(ruser(r, users[1]), ubefore, "the 400s changed nothing of the user")
    # Unknown users.
    error(r.api("GET", "/v1/replication/users/nobody"), 404, "user",
          "GET of a user without an assignment")
    error(r.api("POST", "/v1/replication/users/nobody", {}), 404, "user",
          "POST of a user without an assignment")
    error(r.api("DELETE", "/v1/replication/users/nobody"), 404, "user",
          "DELETE of a user without an assignment")
    eq(queue_view(repl(r)), before, "the 404s changed nothing")

    # -- remove.
    js = status(r.api("DELETE", "/v1/replication/users/" + users[1]), 200,
                "remove")
    eq(js, {"user": users[1], "removed": True}, "remove answer")
    eq((ruser(r, users[1])["state"], ruser(r, users[1])["priority"]),
       ("idle", None), "removed: idle, no priority")
    eq(repl(r)["queued"]["low"], N - 2, "one fewer low entry")
    js = status(r.api("DELETE", "/v1/replication/users/" + users[1]), 200,
                "remove again")
    eq(js, {"user": users[1], "removed": False}, "nothing left to remove")

    # -- roostctl while paused: status, user status, replicate, remove.
    out = ok(r.ctl("replication", "status"), "replication status")
    eq(kv(out, "replication"), "on, paused", "status: on, paused")
    eq(kv(out, "queued"), "sync 1, high 0, low %d, full 0" % (N - 2),
       "status: queued per priority")
    eq(kv(out, "running"), "0 (at most 4 at once)", "status: running")
    eq(kv(out, "refused"), "0 failovers (replica not current)",
       "status: refused failovers")
    eq(kv(out, "events"), "0 (0 from a replica, 0 not from the user's "
       "backend)", "status: events")
    for label in ("failed", "stuck", "waiting", "backing off"):
        eq(kv(out, label), "0", "status: %s" % label)
    check(re.fullmatch(r"\d+s|-", kv(out, "oldest pending")),
          "status: oldest pending as an age: %r" % kv(out, "oldest pending"))
    js = jsout(r.ctl("replication", "status", "--json"), "status --json")
    eq(set(js), STATUS_KEYS, "status --json is the server's object")
    eq(queue_view(js), queue_view(repl(r)), "status --json values")

    out = ok(r.ctl("replication", "status", u0), "replication status USER")
    eq(kv(out, "user"), u0, "user line")
    eq(kv(out, "backend"), home, "backend line")
    eq(kv(out, "replica"), "%s (not current: a full sync is due)" % other,
       "replica line")
    eq(kv(out, "state"), "queued (priority sync)", "state line")
    for label in ("last fast sync", "last full sync", "last success",
                  "last error"):
        eq(kv(out, label), "-", "%s before any sync" % label)
    eq(jsout(r.ctl("--json", "replication", "status", u0.upper()),
             "status USER --json"), ruser(r, u0),
       "status USER --json is the server's object (name normalized)")
    refused(r.ctl("replication", "status", "nobody"), "status of nobody",
            field="user")

    out = ok(r.ctl("replicate", users[2], "--priority", "high"),
             "replicate USER")
    eq(out, "user %s queued for replication (priority high)\n" % users[2],
       "replicate USER output")
    eq(ruser(r, users[2])["priority"], "high", "queued high by roostctl")
    out = ok(r.ctl("replicate", "--full", users[3]), "replicate --full")
    eq(out, "user %s queued for replication (priority high, full sync)\n" %
       users[3], "replicate --full output (default priority high)")
    js = jsout(r.ctl("replicate", "--json", "--priority", "low", users[4]),
               "replicate --json")
    eq(js, {"user": users[4], "priority": "low", "full": False},
       "replicate --json")
    out = ok(r.ctl("replicate", "--all", "--priority", "full"),
             "replicate --all")
    eq(out, "%d users queued for replication (priority full)\n" % N,
       "replicate --all counts every user with a replica")
    eq(repl(r)["queued"]["full"], 1, "--all full: only the removed user "
       "was not queued already")
    eq(ruser(r, users[1])["priority"], "full", "removed user queued again")
    js = jsout(r.ctl("--json", "replicate", "--all"), "replicate --all --json")
    eq(js, {"queued": N, "priority": "high", "full": False},
       "replicate --all --json")
    usage(r.ctl("replicate"), "replicate without USER or --all")
    usage(r.ctl("replicate", u0, "--all"), "replicate USER --all")
    usage(r.ctl("replicate", u0, "--priority", "urgent"), "bad --priority")
    usage(r.ctl("replicate", u0, "--priority"), "--priority without value")
    usage(r.ctl("replicate", u0, users[1]), "two users")
    usage(r.ctl("replication", "remove"), "remove without USER")
    usage(r.ctl("replication", "pause", "now"), "pause takes no argument")
    usage(r.ctl("replication", "status", u0, "--full"), "option of another")
    err = usage(r.ctl("replication"), "replication alone")
    for v in ("status", "remove", "pause", "resume"):
        check("roostctl replication %s" % v in err,
              "replication alone lists %s: %r" % (v, err))
    refused(r.ctl("replicate", "nobody"), "replicate nobody", field="user")
    eq(queue_view(repl(r))[0]["sync"], 1, "usage errors sent nothing")

    out = ok(r.ctl("replication", "remove", users[5]), "replication remove")
    eq(out, "user %s removed from the replication queue\n" % users[5],
       "remove output")
    out = ok(r.ctl("replication", "remove", users[5]), "remove again")
    eq(out, "user %s was not in the replication queue\n" % users[5],
       "remove of an idle user")
    eq(jsout(r.ctl("--json", "replication", "remove", users[5]),
             "remove --json"), {"user": users[5], "removed": False},
       "remove --json")
    refused(r.ctl("replication", "remove", "nobody"), "remove nobody",
            field="user")

    # -- resume: the syncs run; success makes the replica current.
    check(not fakes["b1"].commands("sync") and
          not fakes["b2"].commands("sync"), "no sync while paused")
    bad = {"exit75": 75, "exit2": 2, "exit67": 67}
    for u, code in bad.items():
        b = r.lookup_ok(u)["backend"]
        fakes[b].sync_exit[u] = code
    out = ok(r.ctl("replication", "resume"), "replication resume")
    eq(out, "replication resumed\n", "resume output")
    # Users raised from low to sync or high while queued must not be lost,
    # nor make others be lost.
    def unsynced():
        return ["%s %s %s" % (u, j["state"], j["priority"]) for u, j in
                ((u, ruser(r, u)) for u in users if u != users[5])
                if j["last_success"] is None or j["state"] != "idle"]
    try:
        wait_for("every user synced", lambda: not unsynced())
    except rt.Failure:
        raise rt.Failure("not synced 15 s after resume: %s; status %s" %
                         (unsynced(), repl(r)))
    for u in users:
        if u == users[5]:	# removed: synced only if the start walk
            continue		# queued it again
        ju = ruser(r, u)
        eq((ju["replica_current"], ju["last_error"], ju["failures"]),
           (True, None, 0), "%s synced: replica current, no error" % u)
        check(ju["last_full_sync"] is not None and
              abs(ju["last_full_sync"] - time.time()) < 60,
              "%s: last full sync is a recent time" % u)
        eq(r.user(u)["replica_current"], True, "GET /v1/users: %s current" %
           u)
    home = placed[u0]
    calls = fakes[home].commands("sync", u0)
    check(calls, "the sync of %s ran on its backend %s" % (u0, home))
    eq(calls[0]["destination"], ["tcp:%s:24245" % r.backend(other)["hostip"]],
       "destination: the replica's doveadm port")
    eq(calls[0].get("fullSync"), True, "the first sync is a full one")
    check(not fakes[other].commands("sync", u0), "nothing synced backwards")

    # Exit 75: backs off 10 s; exit 2: 3 reruns, then stuck; 67: dropped.
    t75 = time.time()
    ju = wait_for("exit75 backs off", lambda: (
        lambda j: j if j["state"] == "backoff" else None)(
            ruser(r, "exit75")))
    check("exit 75" in ju["last_error"] and ju["failures"] == 1,
          "exit 75: error and one failure: %r" % ju)
    check(8 <= ju["next_try"] - t75 <= 12, "first backoff is 10 s: %r" %
          (ju["next_try"] - t75))
    ju = wait_for("exit2 is stuck", lambda: (
        lambda j: j if j["state"] == "stuck" else None)(ruser(r, "exit2")))
    check("exit 2" in ju["last_error"], "stuck: says exit 2: %r" % ju)
    b2 = r.user("exit2")["backend"]
    eq(len(fakes[b2].commands("sync", "exit2")), 1 + 3,
       "exit 2: the sync and 3 reruns, then stuck (no tight loop)")
    ju = wait_for("exit67 dropped", lambda: (
        lambda j: j if j["state"] == "idle" and j["last_error"] else None)(
            ruser(r, "exit67")))
    check("does not know the user" in ju["last_error"] and
          ju["priority"] is None, "exit 67: dropped from the queue: %r" % ju)
    js = repl(r)
    eq((js["stuck"], js["failed"], js["backoff"]), (1, 1, 2),
       "status: one stuck, one failing, both backing off")
    check(js["totals"]["synced"] >= N - 1 and js["totals"]["failed"] >= 6,
          "totals: syncs and failures counted: %r" % js["totals"])
    out = ok(r.ctl("replication", "status"), "status after failures")
    eq((kv(out, "replication"), kv(out, "stuck"), kv(out, "failed")),
       ("on", "1", "1"), "status lines after failures")
    out = ok(r.ctl("replication", "status", "exit75"), "status exit75")
    check(kv(out, "state") == "backoff (priority low)" and
          "exit 75" in kv(out, "last error") and
          re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                       kv(out, "next try")),
          "user status of a failing user: %r" % out)
    out = ok(r.ctl("replication", "status", u0), "status of a synced user")
    eq(kv(out, "replica"), "%s (current)" % other, "replica is current")
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                       kv(out, "last success")), "last success as a date")

    # -- pause and resume by roostctl, --json.
    out = ok(r.ctl("replication", "pause"), "roostctl pause")
    eq(out, "replication paused: no sync starts until resume\n", "pause out")
    eq(repl(r)["paused"], True, "paused by roostctl")
    js = jsout(r.ctl("--json", "replication", "resume"), "resume --json")
    eq((set(js), js["paused"]), (STATUS_KEYS, False), "resume --json")
    js = jsout(r.ctl("--json", "replication", "pause"), "pause --json")
    eq(js["paused"], True, "pause --json")
    ok(r.ctl("replication", "resume"), "resume")

    # -- failback: 409 on a down backend, a job on an up one.
    error(r.api("POST", "/v1/backends/b3/failback", {}), 409, "name",
          "failback to a down backend")
    error(r.api("POST", "/v1/backends/nope/failback", {}), 404, "name",
          "failback to an unknown backend")
    refused(r.ctl("failback", "b3"), "roostctl failback b3", field="name",
            words="does not take users")
    refused(r.ctl("failback", "nope"), "roostctl failback nope",
            field="name")
    usage(r.ctl("failback"), "failback without BACKEND")
    out = ok(r.ctl("failback", "b1"), "roostctl failback b1")
    eq(out, "failback to b1 done\n", "failback waits for its job")
    out = ok(r.ctl("failback", "b2", "--no-wait"), "failback --no-wait")
    check(re.fullmatch(r"failback to b2 started \(job \d+\)\n", out),
          "failback --no-wait output: %r" % out)
    js = jsout(r.ctl("--json", "failback", "b1"), "failback --json")
    eq((js["job"]["kind"], js["job"]["backend"]), ("failback", "b1"),
       "failback --json: the job")
    st, au = r.api("GET", "/v1/audit?limit=20")
    check(any(e["action"] == "backend.failback" and e["subject"] == "b1"
              for e in au["entries"]), "failback audited")

    # -- force-failover: refused while the backend serves its users (the
    # override would wait for a failure days later); for a down one, the
    # backend object, audited.
    error(r.api("POST", "/v1/backends/b1/force-failover", {}), 409,
          "name", "force-failover of a healthy backend")
    for b in ("b1", "b2"):
        r.patch_backend(b, state="down")
    js = status(r.api("POST", "/v1/backends/b1/force-failover", {}), 200,
                "force-failover")
    eq(js["name"], "b1", "force-failover answers the backend")
    error(r.api("POST", "/v1/backends/nope/force-failover", {}), 404,
          "name", "force-failover of an unknown backend")
    out = ok(r.ctl("backend", "force-failover", "b2"),
             "roostctl backend force-failover")
    eq(out, "backend b2: its users may now fail over onto replicas that "
       "are not current, until it is healthy again\n", "force-failover out")
    js = jsout(r.ctl("--json", "backend", "force-failover", "b2"),
               "force-failover --json")
    eq(js, r.backend("b2"), "force-failover --json: the backend object")
    refused(r.ctl("backend", "force-failover", "nope"), "force nope",
            field="name")
    st, au = r.api("GET", "/v1/audit?limit=20")
    forced = [e["subject"] for e in au["entries"]
              if e["action"] == "backend.force_failover"]
    eq(sorted(forced), ["b1", "b2", "b2"], "each force-failover audited")
    out = ok(r.ctl("audit", "--limit", "3"), "audit")
    check("backend.force_failover" in out, "roostctl audit shows it")

    # -- help knows the verbs.
    out = ok(r.ctl("help"), "help")
    for v in ("replication status [USER]", "replicate [--full]",
              "replication remove USER", "replication pause",
              "replication resume", "failback BACKEND",
              "backend force-failover NAME"):
        check("roostctl " + v in out, "help lists %r" % v)
    eq(ok(r.ctl("help", "replicate"), "help replicate"),
       "usage: roostctl replicate [--full] [--priority sync|high|low|full] "
       "USER|--all\n", "help replicate")

    # -- replication off: 409, and roostctl says why.
    off = t.roost()
    off.add_backend("b1", "127.0.0.11")
    off.add_backend("b2", "127.0.0.12")
    off.lookup_ok("alice")
    js = repl(off)
    eq((js["enabled"], js["queued"]),
       (False, {"sync": 0, "high": 0, "low": 0, "full": 0}),
       "replication off: enabled false, nothing queued")
    error(off.api("POST", "/v1/replication/users/alice", {}), 409, None,
          "queue a user with replication off")
    error(off.api("POST", "/v1/replication/all", {"full": True}), 409, None,
          "queue all with replication off")
    eq(repl(off)["queued"], js["queued"], "the 409s changed nothing")
    refused(off.ctl("replicate", "alice"), "roostctl replicate, off",
            words="replication is off")
    refused(off.ctl("replicate", "--all"), "roostctl replicate --all, off",
            words="replication is off")
    out = ok(off.ctl("replication", "status"), "status, off")
    eq(kv(out, "replication"), "off (replication = no in roostd.conf)",
       "status says off")

    r.secrets_absent(KEY)
    for f in fakes.values():
        f.close()


rt.run(main)
