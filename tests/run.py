#!/usr/bin/env python3
"""run.py: run every Roost test and print one verdict line per test.

    tests/run.py --build DIR [NAMES...]

First the cmocka unit test binaries DIR/tests/test_* (each cmocka test counts
as one test; a binary that crashes or hangs counts as failed), then every
black-box scenario tests/integration/test_*.py as its own process (one
scenario is one test: exit 0 passes, 77 is skipped, anything else fails).
NAMES keep only the tests whose name contains one of them.  The last line is
always "N passed, N failed" (", N skipped" when some were); the exit status
is 1 when anything failed.
"""

import argparse
import glob
import shutil
import os
import re
import signal
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = 77
UNIT_TIMEOUT = 120
SCENARIO_TIMEOUT = 300
FAIL_LINES = 200	# lines of a failure's output to show

RE_RUNNING = re.compile(r"^\[=+\] Running (\d+) test\(s\)\.", re.M)
RE_OK = re.compile(r"^\[\s+OK\s+\] (\S+)", re.M)
RE_FAILED_NAME = re.compile(r"^\[\s+FAILED\s+\] (?!\d+ test\(s\))(\S+)", re.M)
RE_SKIPPED_NAME = re.compile(r"^\[\s+SKIPPED\s+\] (?!\d+ test\(s\))(\S+)",
                             re.M)
RE_PASSED_N = re.compile(r"^\[\s+PASSED\s+\] (\d+) test\(s\)\.", re.M)
RE_FAILED_N = re.compile(r"^\[\s+FAILED\s+\] (\d+) test\(s\)", re.M)


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def line(self, verdict, name, secs=None, note=""):
        t = "" if secs is None else " (%.1fs)" % secs
        print("%-4s %s%s%s" % (verdict, name, t, note), flush=True)


# A scenario whose file holds this line runs beside the others: it spends
# its time waiting for a clock, uses no Dovecot and no fixed port.
ALONGSIDE = "# run.py: alongside"

DOVECOT_VERSIONS = [v for v in os.environ.get("ROOST_DOVECOT_VERSIONS",
                                              "2.3 2.4").split() if v]


def run_bounded(argv, timeout, env=None, cwd=None):
    """Run argv in its own process group; on timeout kill the whole group
    (a scenario's roostd with it).  Returns (rc or None on timeout,
    combined output)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=env, cwd=cwd, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = p.communicate()
        rc = None
    # Leftovers (a daemon the scenario failed to reap) go too.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return rc, out.decode("utf-8", "replace")


def tail(text, n=FAIL_LINES):
    lines = text.rstrip("\n").splitlines()
    if len(lines) > n:
        lines = ["[... %d lines cut ...]" % (len(lines) - n)] + lines[-n:]
    return "\n".join(lines)


def wanted(name, names):
    return not names or any(n in name for n in names)


def run_unit(path, names, tally):
    base = os.path.basename(path)
    if not wanted(base, names):
        return
    t0 = time.monotonic()
    rc, out = run_bounded([path], UNIT_TIMEOUT, cwd=TOP)
    secs = time.monotonic() - t0
    ok = RE_OK.findall(out)
    bad = RE_FAILED_NAME.findall(out)
    skipped = RE_SKIPPED_NAME.findall(out)
    m = RE_RUNNING.search(out)
    total = int(m.group(1)) if m else None
    m_pass, m_fail = RE_PASSED_N.search(out), RE_FAILED_N.search(out)
    for n in ok:
        tally.passed += 1
        tally.line("PASS", "%s:%s" % (base, n))
    for n in skipped:
        tally.skipped += 1
        tally.line("SKIP", "%s:%s" % (base, n))
    seen = set()
    for n in bad:
        if n in seen:		# cmocka lists failures twice
            continue
        seen.add(n)
        tally.failed += 1
        tally.line("FAIL", "%s:%s" % (base, n))
    finished = (m_pass is not None or m_fail is not None)
    crashed = rc is None or rc < 0 or not finished
    if not crashed and m_pass is not None:
        # Trust cmocka's own count if the per-test lines were lost.
        missing = int(m_pass.group(1)) - len(ok)
        if missing > 0:
            tally.passed += missing
    if crashed:
        # A crash or hang: whatever did not report OK failed (at least one).
        lost = 1 if total is None else max(1, total - len(ok) - len(seen) -
                                           len(skipped))
        tally.failed += lost
        why = "timed out after %ds" % UNIT_TIMEOUT if rc is None else \
            "killed by signal %d" % -rc if rc < 0 else \
            "exited %d without a cmocka summary" % rc
        tally.line("FAIL", base, secs, " [%s; %d test(s) lost]" % (why, lost))
    elif rc != 0 and not seen and m_fail is None:
        tally.failed += 1
        tally.line("FAIL", base, secs, " [exit %d]" % rc)
        crashed = True
    if crashed or seen or m_fail is not None:
        tally.failures.append((base, out))
        print("---- output of %s ----\n%s\n----" % (base, tail(out)),
              flush=True)


def run_fuzz_replay(path, build, names, tally):
    """A fuzz target built with a file-replaying main, over its corpus."""
    target = os.path.basename(path)
    name = "fuzz/" + target
    if not wanted(name, names):
        return
    corpus = os.path.join(TOP, "tests", "fuzz", "corpus",
                          target[len("fuzz_"):])
    t0 = time.monotonic()
    rc, out = run_bounded([path, corpus], SCENARIO_TIMEOUT, cwd=TOP)
    secs = time.monotonic() - t0
    if rc == 0:
        tally.passed += 1
        tally.line("PASS", name, secs)
    else:
        tally.failed += 1
        tally.line("FAIL", name, secs, " [exit %s]" % rc)
        tally.failures.append((name, out))
        print("---- output of %s ----\n%s\n----" % (name, tail(out)),
              flush=True)


def run_lua(path, names, tally):
    """A Lua unit test: one test, judged by its exit code."""
    name = "lua/" + os.path.basename(path)[:-4]
    if not wanted(name, names):
        return
    lua = shutil.which("lua5.4")
    if lua is None:
        tally.failed += 1
        tally.line("FAIL", name, 0, " [lua5.4 missing: scripts/install-deps]")
        tally.failures.append((name, "lua5.4 not installed"))
        return
    t0 = time.monotonic()
    rc, out = run_bounded([lua, path], SCENARIO_TIMEOUT, cwd=TOP)
    secs = time.monotonic() - t0
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if rc == 0:
        tally.passed += 1
        tally.line("PASS", name, secs, "  " + last)
    else:
        tally.failed += 1
        tally.line("FAIL", name, secs, " [exit %s]" % rc)
        tally.failures.append((name, out))
        print("---- output of %s ----\n%s\n----" % (name, tail(out)),
              flush=True)


def run_scenario(path, names, build, tally, dovecot=None):
    name = "integration/" + os.path.basename(path)[:-3]
    if dovecot:
        name += "[%s]" % dovecot
    if not wanted(name, names):
        return
    env = dict(os.environ)
    env["ROOST_BUILD"] = build
    if dovecot:
        env["ROOST_DOVECOT"] = dovecot
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    t0 = time.monotonic()
    rc, out = run_bounded([sys.executable, path], SCENARIO_TIMEOUT, env=env,
                          cwd=TOP)
    secs = time.monotonic() - t0
    if rc == 0:
        tally.passed += 1
        tally.line("PASS", name, secs)
    elif rc == SKIP:
        tally.skipped += 1
        why = out.strip().splitlines()[-1] if out.strip() else ""
        tally.line("SKIP", name, secs, "  " + why if why else "")
    else:
        tally.failed += 1
        why = "timed out after %ds" % SCENARIO_TIMEOUT if rc is None else \
            "exit %d" % rc
        tally.line("FAIL", name, secs, " [%s]" % why)
        tally.failures.append((name, out))
        print("---- output of %s ----\n%s\n----" % (name, tail(out)),
              flush=True)


def run_pool(tasks, jobs, names, build, tally):
    """Dovecot scenarios, (path, version) each, at most `jobs` at once and
    never two of one file (both versions of a scenario use its ports)."""
    pending = list(tasks)
    running = {}		# path -> (thread, tally)

    def reap():
        for path, (th, side) in list(running.items()):
            if not th.is_alive():
                th.join()
                tally.passed += side.passed
                tally.failed += side.failed
                tally.skipped += side.skipped
                tally.failures += side.failures
                del running[path]

    while pending or running:
        reap()
        for task in list(pending):
            if len(running) >= jobs:
                break
            path, version = task
            if path in running:
                continue
            pending.remove(task)
            side = Tally()
            th = threading.Thread(target=run_scenario,
                                  args=(path, names, build, side, version))
            th.start()
            running[path] = (th, side)
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description="Run Roost's tests.")
    ap.add_argument("--build", default="build",
                    help="build directory (holds roostd, roostctl, tests/)")
    ap.add_argument("--no-unit", action="store_true",
                    help="skip the cmocka unit tests")
    ap.add_argument("--no-integration", action="store_true",
                    help="skip the black-box scenarios")
    ap.add_argument("--jobs", type=int, default=1, choices=range(1, 5),
                    help="Dovecot scenarios run at once (default 1)")
    ap.add_argument("names", nargs="*",
                    help="run only tests whose name contains one of these")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    tally = Tally()

    if not a.no_unit:
        for p in sorted(glob.glob(os.path.join(build, "tests", "test_*"))):
            if os.path.isfile(p) and os.access(p, os.X_OK) and \
                    not p.endswith((".d", ".o")):
                run_unit(p, a.names, tally)
        for p in sorted(glob.glob(os.path.join(TOP, "tests", "unit",
                                               "test_*.lua"))):
            run_lua(p, a.names, tally)
        for p in sorted(glob.glob(os.path.join(build, "fuzz", "fuzz_*"))):
            if os.path.isfile(p) and os.access(p, os.X_OK) and \
                    not p.endswith((".d", ".o")):
                run_fuzz_replay(p, build, a.names, tally)
    if not a.no_integration:
        paths = sorted(glob.glob(os.path.join(TOP, "tests", "integration",
                                              "test_*.py")))
        # Scenarios that mostly wait on a clock run beside the others
        # (their own thread and tally): two of them wait two minutes.
        beside = [p for p in paths if ALONGSIDE in open(p).read()]
        threads = []
        for p in beside:
            side = Tally()
            th = threading.Thread(target=run_scenario,
                                  args=(p, a.names, build, side))
            th.start()
            threads.append((th, side))
        dovecot = []
        for p in paths:
            if p in beside:
                continue
            # Scenarios with real Dovecot run once per version.
            if os.path.basename(p).startswith("test_dovecot_"):
                dovecot += [(p, version) for version in DOVECOT_VERSIONS]
            else:
                run_scenario(p, a.names, build, tally)
        run_pool(dovecot, a.jobs, a.names, build, tally)
        for th, side in threads:
            th.join()
            tally.passed += side.passed
            tally.failed += side.failed
            tally.skipped += side.skipped
            tally.failures += side.failures

    if tally.failures:
        print("failed: " + " ".join(n for n, _ in tally.failures))
    last = "%d passed, %d failed" % (tally.passed, tally.failed)
    if tally.skipped:
        last += ", %d skipped" % tally.skipped
    print(last, flush=True)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
