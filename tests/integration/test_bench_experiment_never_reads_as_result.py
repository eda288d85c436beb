"""A bench run with BENCH_B_BARE_GET=1 says it is an experiment: its table
opens with an EXPERIMENT line, mode B is named for what it ran, C/B gets no
PASS/FAIL, and its JSON (experiment.json, never latest.json) carries
"experiment": "b_bare_get".  A plain run is labelled as none of that.

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


def medians():
    m = {"logins_per_s": 500.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0,
         "other_cpu_pct": 10.0,
         "cpu_ms_per_login": {"p1:auth": 0.5, "other": 0.1}}
    return {k: dict(m) for k in ("A", "B", "C")}


def run_bench(env, results):
    """bench/run's main() under env, with fake measurements; returns
    (exit status, printed text)."""
    saved = dict(os.environ)
    os.environ.pop("BENCH_B_BARE_GET", None)
    os.environ.pop("BENCH_B_LUA", None)
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
        mod.run_logins = lambda rig, roost: ({}, medians())
        mod.sh = lambda *a, **kw: None
        mod.run_lookups = lambda work, roost: {
            "medians": {"lookup": {"requests_per_s": 9000.0, "p50_ms": 0.2,
                                   "p99_ms": 0.5},
                        "nope": {"requests_per_s": 10000.0}},
            "rss_kb_after_start": 100000, "rss_kb_after_load": 100000,
            "cold_start_s": 1.0}
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


rt.run(main)
