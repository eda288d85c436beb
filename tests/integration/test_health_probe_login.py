"""A backend with a probe account is probed with an IMAP LOGIN: the account
logging in keeps it ok; a wrong password makes it failed with an error
saying the test login was refused; clearing the account (a greeting is
enough again) brings it back; roostctl sets the account from a file (not
one others can read) and shows only that a password is set; the password
is in no log, answer, audit or `roostctl backend show`."""

import os
import time

import roosttest as rt
from roosttest import check, eq, error
from fakemail import FakeService

GOOD_PW = "Probe-pw-5b1e-never-shown"
WRONG_PW = "Wrong-pw-c07d-never-shown"
FILE_PW = "File-pw-91aa-never-shown"
USER = "probe@example.com"
ONLY_IMAP = {"pop3": 0, "lmtp": 0, "submission": 0, "sieve": 0,
             "doveadm": 0}


def wait_health(r, name, state, seconds, after=None):
    """The backend's health reaches state in a probe round that ended
    after `after` (epoch seconds), so that an old verdict does not count."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        h = r.backend(name)["health"]
        if (h["state"] == state and h["checked"] is not None and
                (after is None or h["checked"] > after)):
            return h
        time.sleep(0.1)
    raise rt.Failure("backend %s not %s within %ss: %r" %
                     (name, state, seconds, r.backend(name)["health"]))


def logins(fake, since=0):
    return [l for l in fake.lines[since:] if " LOGIN " in l.upper()]


def main(t):
    fake = FakeService("127.0.0.31", "imap", password=GOOD_PW)
    # A second backend, always healthy, so that b1 failing is not
    # "everything failed at once".
    good = FakeService("127.0.0.32", "imap")
    r = t.roost(probe_interval="1s", probe_timeout="1s", probe_rise="2",
                probe_fall="2")
    ports = dict(ONLY_IMAP, imap=fake.port)
    b1 = r.add_backend("b1", "127.0.0.31", ports=ports,
                       probe={"user": USER, "password": GOOD_PW})
    eq(b1["probe"], {"user": USER, "password_set": True},
       "the account is shown with the password only as password_set")
    r.add_backend("b2", "127.0.0.32", ports=dict(ONLY_IMAP, imap=good.port))

    wait_health(r, "b1", "ok", 5)
    seen = logins(fake)
    check(len(seen) > 0, "the probe logged in with the test account: %r" %
          fake.lines[-6:])
    eq(seen[-1].split(" ", 2)[2], '"%s" "%s"' % (USER, GOOD_PW),
       "LOGIN with the backend's probe user and password")
    check(not logins(good), "no LOGIN on b2, which has no probe account")

    # A GET body sent back as a PATCH keeps the account and its password.
    body = r.backend("b1")
    for k in ("name", "users", "health", "created", "updated"):
        body.pop(k, None)
    rt.status(r.api("PATCH", "/v1/backends/b1", body), 200,
              "GET body PATCHed back")
    n = len(fake.lines)
    wait_health(r, "b1", "ok", 5, after=time.time())
    eq(logins(fake, n)[-1].split(" ", 2)[2], '"%s" "%s"' % (USER, GOOD_PW),
       "the password survived the GET-shaped PATCH")

    # The backend's password is changed, roostd has the old one.
    r.patch_backend("b1", probe={"password": WRONG_PW})
    h = wait_health(r, "b1", "failed", 8)
    check("test login refused" in h["error"] and h["error"].startswith(
          "imap"), "the error says the imap test login was refused: %r" %
          h["error"])
    check(WRONG_PW not in h["error"] and GOOD_PW not in h["error"],
          "no password in the error")
    eq(h["routed"], False, "a backend refusing its test login is not "
       "handed out")
    eq(r.backend("b2")["health"]["state"], "ok", "b2 stays ok")
    eq(r.lookup_ok("alice")["backend"], "b2", "a new user goes to b2")

    # Refused shapes name the field and change nothing.
    before = r.backend("b1")
    error(r.api("PATCH", "/v1/backends/b1",
                {"probe": {"user": "u", "password": WRONG_PW + "\r\nX"}}),
          400, "probe.password", "CR LF in the password")
    error(r.api("PATCH", "/v1/backends/b1",
                {"probe": {"user": "", "password": WRONG_PW}}),
          400, "probe.user", "a password without a user")
    error(r.api("PATCH", "/v1/backends/b1", {"probe": {"user": "x" * 256}}),
          400, "probe.user", "a user of 256 bytes")
    eq(r.backend("b1")["probe"], before["probe"], "refused PATCHes changed "
       "nothing")

    # No account: a greeting is enough again, and no LOGIN is sent.
    r.patch_backend("b1", probe={"user": "", "password": ""})
    eq(r.backend("b1")["probe"], {"user": "", "password_set": False},
       "the account cleared")
    h = wait_health(r, "b1", "ok", 8)
    n = len(fake.lines)
    wait_health(r, "b1", "ok", 5, after=time.time() + 0.5)
    check(len(fake.lines) > n and not logins(fake, n),
          "probes without an account send no LOGIN: %r" % fake.lines[n:])

    # roostctl: the password from a file, shown only as set.
    pwfile = os.path.join(r.tmp, "probe.pw")
    with open(pwfile, "w") as f:
        f.write(FILE_PW + "\n")
    os.chmod(pwfile, 0o644)
    rc, out, err = r.ctl("backend", "set", "b1", "--probe-user", USER,
                         "--probe-password-file", pwfile)
    eq(rc, 2, "a password file readable by others is refused")
    check(FILE_PW not in out + err and pwfile in err,
          "roostctl names the file, not its content: %r" % err)
    os.chmod(pwfile, 0o600)
    rc, out, err = r.ctl("backend", "set", "b1", "--probe-user", USER,
                         "--probe-password-file", pwfile)
    eq(rc, 0, "roostctl backend set --probe-user --probe-password-file")
    rc, out, err = r.ctl("backend", "show", "b1")
    eq(rc, 0, "roostctl backend show")
    check("probe user:" in out and USER in out,
          "backend show prints the probe user: %r" % out)
    check([l for l in out.splitlines() if l.startswith("probe password:")
           and l.split(":", 1)[1].strip() == "set"],
          "backend show says the probe password is set: %r" % out)
    # The fake only takes GOOD_PW: the file's password is refused, which
    # shows that it reached the probe.
    h = wait_health(r, "b1", "failed", 8)
    check("test login refused" in h["error"], "file password used: %r" %
          h["error"])
    fake.password = FILE_PW
    wait_health(r, "b1", "ok", 8)
    eq(logins(fake)[-1].split(" ", 2)[2], '"%s" "%s"' % (USER, FILE_PW),
       "the file's password without its newline")

    # An empty --probe-user clears the account.
    rc, out, err = r.ctl("backend", "set", "b1", "--probe-user", "")
    eq(rc, 0, "roostctl backend set --probe-user ''")
    eq(r.backend("b1")["probe"], {"user": "", "password_set": False},
       "roostctl cleared the account")
    rc, out, err = r.ctl("backend", "show", "b1")
    check([l for l in out.splitlines() if l.startswith("probe password:")
           and l.split(":", 1)[1].strip() == "not set"],
          "backend show says no probe password: %r" % out)

    rt.status(r.api("GET", "/v1/audit?limit=100"), 200, "audit")
    r.secrets_absent(GOOD_PW, WRONG_PW, FILE_PW)
    fake.close()
    good.close()


rt.run(main)
