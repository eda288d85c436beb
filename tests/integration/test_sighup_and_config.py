"""The config file as an admin meets it: `roostd -n` says "configuration OK"
or names FILE:LINE of the error; SIGHUP with a bad file keeps the running
config (and the log says why), with a good one applies it (lookup token,
admin token rotation, log level); an admin token file readable by others is
refused at start without printing the token; SIGTERM exits 0 cleanly."""

import os
import signal
import subprocess
import time

import roosttest as rt
from roosttest import check, eq, error, status


def wait_for(cond, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise rt.Failure("timed out waiting for: " + what)


def bad_config(r, lines, want_line, what):
    """Write lines as the config; roostd -n must name FILE:LINE."""
    path = os.path.join(r.tmp, "bad.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    rc, out = r.check_config(path)
    check(rc != 0, "%s: roostd -n exit %d, output %r" % (what, rc, out))
    check("configuration OK" not in out, "%s: says OK: %r" % (what, out))
    check("%s:%d:" % (path, want_line) in out,
          "%s: roostd -n should name %s:%d:, said %r" %
          (what, path, want_line, out))
    check(r.admin_token not in out and r.lookup_token not in out,
          "%s: a token in roostd -n output" % what)


def main(t):
    r = t.roost(start=False)

    # -- roostd -n on good and bad files.
    rc, out = r.check_config()
    eq(rc, 0, "roostd -n on a good file (output %r)" % out)
    check("configuration OK" in out, "roostd -n says %r" % out)
    base = ["listen = 127.0.0.1:%d" % r.port,
            "store = sqlite:" + r.db_path,
            "admin_token_file = " + r.admin_token_file]
    bad_config(r, base + ["no_such_setting = 1"], 4, "unknown setting")
    bad_config(r, ["# comment", ""] + base + ["log_level = loud"], 6,
               "bad log_level")
    bad_config(r, base[:1] + ["this line has no equals sign"] + base[1:], 2,
               "line without =")
    bad_config(r, base + ["user_expire = soon"], 4, "bad user_expire")
    bad_config(r, base + ["username_format = %Q"], 4, "bad username_format")
    bad_config(r, base[1:] + ["listen = 127.0.0.1:99999"], 3, "bad port")
    missing = os.path.join(r.tmp, "missing.conf")
    rc, out = r.check_config(missing)
    check(rc != 0 and missing in out,
          "a missing config file is named: rc %d %r" % (rc, out))
    # Starting on a bad file fails too, and says where.
    r.write_config(extra_lines=["bogus_key = 1"])
    p = subprocess.run([rt.ROOSTD, "-d", "-f", r.conf_path],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(p.returncode != 0, "roostd started on a bad config")
    check("%s:" % r.conf_path in out, "start error names the file: %r" % out)

    # -- admin token file readable by others: refused at start.
    os.chmod(r.admin_token_file, 0o644)
    r.write_config()
    rc, out = r.check_config()
    check(rc != 0, "roostd -n accepted a 0644 admin token file: %r" % out)
    check(r.admin_token_file in out, "-n names the token file: %r" % out)
    check(r.admin_token not in out, "-n printed the admin token")
    p = subprocess.run([rt.ROOSTD, "-d", "-f", r.conf_path],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(p.returncode != 0, "roostd started with a 0644 admin token file")
    check(r.admin_token_file in out, "start error names the token file: %r" %
          out)
    check(r.admin_token not in out, "start error printed the admin token")
    os.chmod(r.admin_token_file, 0o640)
    rc, out = r.check_config()
    check(rc != 0, "roostd -n accepted a group-readable token file")
    os.chmod(r.admin_token_file, 0o600)

    # -- running daemon: SIGHUP with a bad file keeps the old config.
    r.write_config()
    r.start()
    r.add_backend("b1", "127.0.0.11")
    status(r.lookup("alice", token=None), 200, "open lookup")
    r.write_config(lookup_token=True, extra_lines=["", "", "frobnicate = yes"])
    bad_line = 2 + len(r.settings) + 2
    mark = len(r.log())
    r.kill(signal.SIGHUP)
    wait_for(lambda: "%s:%d:" % (r.conf_path, bad_line) in r.log()[mark:],
             "the log names %s:%d after a bad SIGHUP" % (r.conf_path, bad_line))
    check(r.alive(), "roostd died on a bad SIGHUP")
    check("keep" in r.log()[mark:].lower(),
          "the log says the running config is kept: %r" % r.log()[mark:])
    status(r.lookup("bob", token=None), 200,
           "after a bad SIGHUP lookups are still open (old config)")
    status(r.api("GET", "/v1/backends"), 200, "admin token still works")

    # Unreadable lookup token file: also bad, also kept.
    r.write_config(lookup_token=True)
    os.chmod(r.lookup_token_file, 0o644)
    mark = len(r.log())
    r.kill(signal.SIGHUP)
    wait_for(lambda: r.lookup_token_file in r.log()[mark:],
             "the log names the bad lookup token file")
    status(r.lookup("carol", token=None), 200,
           "lookup token file with mode 0644 not taken")
    check(r.lookup_token not in r.log(), "lookup token in the log")
    os.chmod(r.lookup_token_file, 0o600)

    # -- SIGHUP with a good file: a lookup token now required.
    mark = len(r.log())
    r.kill(signal.SIGHUP)
    wait_for(lambda: "reload" in r.log()[mark:] or
             r.lookup("dave", token=None)[0] == 401, "reload")
    wait_for(lambda: r.lookup("dave", token=None)[0] == 401,
             "lookups need the token after SIGHUP")
    error(r.lookup("dave", token="wrong"), 403, None, "wrong lookup token")
    status(r.lookup("dave", token="lookup"), 200, "new lookup token works")
    status(r.lookup("dave", token="admin"), 200, "admin token for lookups")

    # Admin token rotation by SIGHUP.
    old_admin = r.admin_token
    r.admin_token = "adm-rotated-" + os.urandom(8).hex()
    r._write_secret(r.admin_token_file, r.admin_token, 0o600)
    r.kill(signal.SIGHUP)
    wait_for(lambda: r.api("GET", "/v1/backends", token=old_admin)[0] == 403,
             "the old admin token refused after rotation")
    status(r.api("GET", "/v1/backends"), 200, "the new admin token works")

    # log_level: at warn, admin changes are no longer logged as info.
    r.write_config(lookup_token=True, log_level="warn")
    r.kill(signal.SIGHUP)
    time.sleep(0.3)
    mark = len(r.log())
    r.add_backend("quiet-backend", "127.0.0.12")
    status(r.api("GET", "/v1/health", token=None), 200, "health")
    time.sleep(0.3)
    check("quiet-backend" not in r.log()[mark:],
          "log_level warn still logs an info line: %r" % r.log()[mark:])
    r.write_config(lookup_token=True, log_level="info")
    r.kill(signal.SIGHUP)
    wait_for(lambda: "reload" in r.log()[mark:], "reload logged at info")
    mark = len(r.log())
    r.add_backend("loud-backend", "127.0.0.13")
    wait_for(lambda: "loud-backend" in r.log()[mark:],
             "info lines back after log_level info")

    # Settings bound at start are kept, and the daemon says so.
    r.write_config(lookup_token=True, listen="127.0.0.1:%d" % rt.free_port())
    mark = len(r.log())
    r.kill(signal.SIGHUP)
    wait_for(lambda: "listen" in r.log()[mark:],
             "the log says listen needs a restart")
    status(r.api("GET", "/v1/health", token=None), 200,
           "still on the old port")
    r.write_config(lookup_token=True)

    for s in (r.admin_token, old_admin, r.lookup_token):
        check(s not in r.log(), "a token in roostd's log")

    # -- SIGTERM: exit 0, cleanly, store intact.
    rc = r.kill(signal.SIGTERM)
    eq(rc, 0, "exit status after SIGTERM")
    check("stop" in r.log()[-200:].lower() or "shut" in r.log().lower(),
          "the log says roostd stopped")
    r.start()
    eq([b["name"] for b in r.backends()],
       ["b1", "loud-backend", "quiet-backend"], "backends after SIGTERM")
    status(r.lookup("alice", token="lookup"), 200, "lookups after restart")
    eq(r.kill(signal.SIGINT), 0, "exit status after SIGINT")


rt.run(main)
