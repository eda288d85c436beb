"""A bench run with BENCH_B_BARE_GET=1 says it is an experiment: its table
opens with an EXPERIMENT line, mode B is named for what it ran, C/B gets no
PASS/FAIL, and its JSON (experiment.json, never latest.json) carries
"experiment": "b_bare_get".  A plain run is labelled as none of that.

A BENCH_ONLY run shows only its sections, says so, and writes partial.json.
The failover rows give the median and the max over rounds against 3 s.  The
flush row reads "n/a (no flush yet)" and the run still passes when roostd
answers the flush POST with 404 or 405; once it answers 202 the row is the
rate from the POST until no move is open and the backend holds nobody.
The replication rows put Roost's lag median against the 2.3 replicator's
and its p99 against 250 ms.

bench/run's own main() runs here with the measuring steps (rig, loadgen,
wrk) replaced by fixed numbers, so what is checked is the report and the
file a real run would write, in a second instead of minutes."""
import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import sys
import tempfile

import roosttest as rt
from roosttest import check, eq

BENCH = os.path.join(rt.TOP, "bench", "run")


class FakeRoostd:
    def __init__(self, work):
        pass

    def start(self, *a, **kw):
        pass

    def stop(self):
        pass


class FakeRig:
    info = {"dovecot_version": "2.3.19.1 (fake)"}
    dir = "/nonexistent"


class FlushRoostd:
    """roostd as the flush measurement sees it: the POST answers `status`;
    after a 202 the open moves and the backend's users go down by `step`
    per poll, from `users`."""

    def __init__(self, status, users=1000, step=250):
        self.status, self.left, self.step = status, users, step
        self.calls = []

    def api(self, method, path, body=None, auth=True):
        self.calls.append((method, path))
        if method == "POST":
            if self.status == 202:
                return 202, {"backend": "b1", "moves": self.left}
            return self.status, {"error": "not found", "field": "path"}
        if path.startswith("/v1/moves"):
            self.left = max(self.left - self.step, 0)
            return 200, {"moves": [{"id": 1}] if self.left else [],
                         "open": self.left, "next_before": None}
        if path.startswith("/v1/users"):
            return 200, {"users": [{"user": "x"}] if self.left else [],
                         "next_cursor": None}
        return 404, {"error": "unexpected %s %s" % (method, path)}


def failover_rounds():
    return [{"round": i + 1, "killed": "b%d" % (i % 2 + 1),
             "failover_s": s} for i, s in enumerate((2.5, 2.0, 2.9))]


def medians():
    m = {"logins_per_s": 500.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0,
         "other_cpu_pct": 10.0,
         "cpu_ms_per_login": {"p1:auth": 0.5, "other": 0.1}}
    return {k: dict(m) for k in ("A", "B", "C")}


def replication():
    """What run_replication measures, as fixed numbers."""
    lag = {"count": 200, "missing": 0, "median_ms": 30.0, "p99_ms": 90.0,
           "rounds": [29.0, 30.0, 31.0, 30.0, 30.5]}
    return {"lag": lag,
            "anchor": dict(lag, median_ms=32.0, p99_ms=80.0),
            "syncs": {"synced": 101, "max_conns": 10, "per_s": 120.0}}


def store():
    """What run_store measures, as fixed numbers."""
    return {"users": 100000, "ratio_known": 1.01,
            "medians": {"sqlite": {"known": 40000.0, "new": 20000.0},
                        "postgresql": {"known": 40400.0, "new": 3000.0}},
            "feed": {"p50_ms": 0.6, "p99_ms": 2.0, "arrived": 200}}


def run_bench(env, results, flush_status=404):
    """bench/run's main() under env, with fake measurements (the flush
    endpoint answering flush_status); returns (exit status, printed
    text)."""
    saved = dict(os.environ)
    os.environ.pop("BENCH_B_BARE_GET", None)
    os.environ.pop("BENCH_B_LUA", None)
    os.environ.pop("BENCH_ONLY", None)
    os.environ.update(env)
    try:
        loader = importlib.machinery.SourceFileLoader("bench_run", BENCH)
        spec = importlib.util.spec_from_loader("bench_run", loader)
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        mod.RESULTS = results
        mod.ROOSTD = mod.LOADGEN = "/bin/true"
        mod.Roostd = FakeRoostd
        mod.setup_logins = lambda work, roost: (FakeRig(), {})
        mod.run_logins = lambda rig, roost, uset: ({}, medians())
        mod.sh = lambda *a, **kw: None
        mod.run_lookups = lambda work, roost: {
            "medians": {"lookup": {"requests_per_s": 9000.0, "p50_ms": 0.2,
                                   "p99_ms": 0.5},
                        "nope": {"requests_per_s": 10000.0}},
            "rss_kb_after_start": 100000, "rss_kb_after_load": 100000,
            "cold_start_s": 1.0}
        mod.setup_failover = lambda work: (FakeRig(), FakeRoostd(work))
        mod.run_failover = lambda rig, roost: failover_rounds()
        mod.setup_flush = lambda rig, roost: ("b1", 1000, [])
        mod.run_replication = lambda work: replication()
        mod.run_store = lambda work: store()
        flush = FlushRoostd(flush_status)
        real = getattr(mod, "run_flush", None)    # the measurement itself
        mod.run_flush = lambda roost, backend, users: \
            real(flush, backend, users)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(io.StringIO()):
            rc = mod.main()
        return rc, out.getvalue()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def row(text, metric):
    for line in text.splitlines():
        if line.startswith(metric):
            return [c.strip() for c in line.split("|")]
    return None


def main(t):
    if os.geteuid() != 0:
        raise rt.Skip("bench/run refuses to start without root")
    results = tempfile.mkdtemp(dir=t.base)

    rc, text = run_bench({"BENCH_B_BARE_GET": "1"}, results)
    eq(rc, 0, "experiment run exit status")
    first = text.splitlines()[0]
    check(first.startswith("EXPERIMENT b_bare_get"),
          "experiment table opens with EXPERIMENT: %r" % first)
    b = row(text, "logins/s B")
    check(b is not None and "bare GET" in b[0],
          "mode B named for the bare GET: %r" % b)
    cb = row(text, "logins ratio C/B")
    check(cb is not None and cb[3] not in ("PASS", "FAIL"),
          "C/B of an experiment has no verdict: %r" % cb)
    eq(sorted(os.listdir(results)), ["experiment.json"],
       "files an experiment writes")
    with open(os.path.join(results, "experiment.json")) as f:
        js = json.load(f)
    eq(js.get("experiment"), "b_bare_get", "experiment in the JSON")
    check("bare GET" in js["logins"]["modes"]["B"],
          "mode B in the JSON: %r" % js["logins"]["modes"]["B"])
    check(all(r["verdict"] not in ("PASS", "FAIL") for r in js["table"]
              if r["metric"].startswith("logins ratio C/B")),
          "C/B in the JSON table has no verdict")

    os.unlink(os.path.join(results, "experiment.json"))
    rc, text = run_bench({}, results)
    eq(rc, 0, "plain run exit status")
    check("EXPERIMENT" not in text, "a plain run says no EXPERIMENT")
    eq(row(text, "logins ratio C/B"),
       ["logins ratio C/B", "1.000", ">= 0.97", "PASS"], "plain C/B row")
    eq(sorted(os.listdir(results)), ["latest.json"], "files a plain run writes")
    with open(os.path.join(results, "latest.json")) as f:
        js = json.load(f)
    eq(js.get("experiment"), None, "a plain run is no experiment")

    # failover: median and max of the rounds, each against 3 s
    eq(row(text, "failover time median"),
       ["failover time median (3 rounds)", "2.50 s", "<= 3 s", "PASS"],
       "failover median row")
    eq(row(text, "failover time max"),
       ["failover time max", "2.90 s", "<= 3 s", "PASS"], "failover max row")
    eq([r["failover_s"] for r in js["failover"]["rounds"]], [2.5, 2.0, 2.9],
       "failover rounds in the JSON")
    # flush not built: 404 (and 405) read as n/a, the run passes
    eq(row(text, "flush rate"),
       ["flush rate (1000 users)", "n/a (no flush yet)", ">= 200/s", "n/a"],
       "flush row while the endpoint answers 404")
    eq(js["flush"]["built"], False, "flush not built in the JSON")
    for st in (405, 202):
        os.unlink(os.path.join(results, "latest.json"))
        rc, text = run_bench({}, results, flush_status=st)
        eq(rc, 0, "exit status with the flush POST answering %d" % st)
        r = row(text, "flush rate")
        if st == 405:
            eq(r[1:], ["n/a (no flush yet)", ">= 200/s", "n/a"],
               "flush row on 405")
            continue
        # four polls of a fake that empties by 250 a poll: the rate is
        # measured, whatever this machine's speed, as users over seconds
        check(r[1].endswith(" users/s") and r[2:] == [">= 200/s", "PASS"],
              "flush row once flush exists: %r" % r)
        with open(os.path.join(results, "latest.json")) as f:
            fl = json.load(f)["flush"]
        check(fl["built"] and fl["done"] and fl["users"] == 1000 and
              abs(fl["users_per_s"] - 1000 / fl["seconds"]) < 1e-6,
              "flush in the JSON: %r" % fl)

    # replication: Roost's median against the 2.3 replicator's, p99
    # against 250 ms, in the same run
    eq(row(text, "replication lag median ("),
       ["replication lag median (200 deliveries)", "30.0 ms", "<= 32.0 ms",
        "PASS"], "replication median row")
    eq(row(text, "replication lag p99 ("),
       ["replication lag p99 (200 deliveries)", "90.0 ms", "<= 250 ms",
        "PASS"], "replication p99 row")
    eq(row(text, "syncs/s")[1], "120", "syncs/s row")

    # BENCH_ONLY: those sections, said so, and never latest.json
    os.unlink(os.path.join(results, "latest.json"))
    rc, text = run_bench({"BENCH_ONLY": "failover,flush"}, results)
    eq(rc, 0, "BENCH_ONLY run exit status")
    check("only failover,flush (BENCH_ONLY)" in text,
          "a partial run says so:\n" + text)
    check(row(text, "failover time max") and row(text, "flush rate") and
          not row(text, "logins/s") and not row(text, "lookup p99"),
          "a partial run has the rows of its sections only:\n" + text)
    eq(sorted(os.listdir(results)), ["partial.json"],
       "files a BENCH_ONLY run writes")
    rc, text = run_bench({"BENCH_ONLY": "failover,nope"}, results)
    eq(rc, 1, "BENCH_ONLY naming no section")
    eq(sorted(os.listdir(results)), ["partial.json"],
       "a refused BENCH_ONLY writes nothing")


rt.run(main)
