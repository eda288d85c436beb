"""roostctl against a real roostd: every verb does what docs/roostctl.md says,
tables show the expected rows, --json prints the server's answer, exit codes
are 0 (ok), 1 (refused, error on stderr), 2 (usage), 3 (no server), and
ROOST_URL / ROOST_TOKEN_FILE work.  The doveadm key never appears."""

import http.server
import json
import os
import threading

import roosttest as rt
from roosttest import check, eq, status

KEY = "ctl-dovekey-5e0c1b7a92"


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


def refused(res, what, field=None):
    rc, out, err = rc_is(res, 1, what)
    check(err.startswith("roostctl: ") and err.strip() != "roostctl:",
          "%s: stderr should be 'roostctl: <error>': %r" % (what, err))
    if field is not None:
        check("(field %s)" % field in err,
              "%s: stderr should name (field %s): %r" % (what, field, err))
    return err


def usage(res, what):
    rc, out, err = rc_is(res, 2, what)
    check(err.strip() != "", "%s: a usage error says something on stderr" %
          what)
    return err


def row(out, *cells):
    """The table line holding all cells as whole words."""
    for line in out.splitlines():
        words = line.split()
        if all(c in words for c in cells):
            return line
    raise rt.Failure("no row with %r in:\n%s" % (cells, out))


def jsout(res, what):
    out = ok(res, what)
    try:
        return json.loads(out)
    except ValueError:
        raise rt.Failure("%s: --json output is not one JSON document: %r" %
                         (what, out[:300]))


class NotRoost(http.server.BaseHTTPRequestHandler):
    """A web server that is not roostd: HTML for everything."""

    def do_GET(self):
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, *a):
        pass


def main(t):
    r = t.roost()
    keyfile = os.path.join(r.tmp, "doveadm.key")
    with open(keyfile, "w") as f:
        f.write(KEY + "\n")
    os.chmod(keyfile, 0o600)

    # -- backend add / list / show.
    ok(r.ctl("backend", "add", "b1", "--host", "127.0.0.11",
             "--imap-port", "1143", "--pop3-port", "1110", "--lmtp-port",
             "1024", "--submission-port", "1587", "--sieve-port", "14190",
             "--doveadm-port", "18080", "--doveadm-url",
             "http://127.0.0.11:8080/doveadm/v1", "--doveadm-key-file",
             keyfile, "--weight", "150"), "backend add b1")
    b1 = r.backend("b1")
    eq((b1["host"], b1["hostip"], b1["weight"], b1["state"]),
       ("127.0.0.11", "127.0.0.11", 150, "up"), "b1 as added by roostctl")
    eq(b1["ports"], {"imap": 1143, "pop3": 1110, "lmtp": 1024,
                     "submission": 1587, "sieve": 14190, "doveadm": 18080},
       "b1 ports from options")
    eq(b1["doveadm"], {"url": "http://127.0.0.11:8080/doveadm/v1",
                       "api_key_set": True}, "b1 doveadm from options")
    js = jsout(r.ctl("--json", "backend", "add", "b2", "--host",
                     "mail2.example.com", "--hostip", "127.0.0.12", "--tag",
                     "gold", "--state", "drain"), "backend add --json")
    eq(js, r.backend("b2"), "backend add --json prints the server's answer")
    eq((js["tag"], js["state"], js["hostip"]), ("gold", "drain", "127.0.0.12"),
       "b2 options")
    ok(r.ctl("backend", "add", "b3", "--host", "127.0.0.13"), "add b3")

    out = ok(r.ctl("backend", "list"), "backend list")
    row(out, "b1", "up", "150")
    row(out, "b2", "drain", "gold")
    row(out, "b3", "up", "100")
    check(out.index("b1") < out.index("b2") < out.index("b3"),
          "backend list ordered by name")
    eq(jsout(r.ctl("--json", "backend", "list"), "backend list --json"),
       {"backends": r.backends()}, "backend list --json")
    out = ok(r.ctl("backend", "show", "b1"), "backend show")
    for want in ("127.0.0.11", "1143", "14190", "18080",
                 "http://127.0.0.11:8080/doveadm/v1"):
        check(want in out, "backend show lacks %r:\n%s" % (want, out))
    eq(jsout(r.ctl("backend", "show", "b1", "--json"), "show --json after"),
       r.backend("b1"), "--json after the verb works too")

    # -- set / up / down / drain.
    ok(r.ctl("backend", "set", "b3", "--weight", "300", "--tag", "",
             "--imap-port", "2143"), "backend set")
    b3 = r.backend("b3")
    eq((b3["weight"], b3["ports"]["imap"], b3["ports"]["pop3"]),
       (300, 2143, 110), "backend set changed only what it named")
    ok(r.ctl("backend", "down", "b3"), "backend down")
    eq(r.backend("b3")["state"], "down", "state after backend down")
    ok(r.ctl("backend", "drain", "b3"), "backend drain")
    eq(r.backend("b3")["state"], "drain", "state after backend drain")
    ok(r.ctl("backend", "up", "b3"), "backend up")
    eq(r.backend("b3")["state"], "up", "state after backend up")
    ok(r.ctl("backend", "set", "b3", "--state", "down"), "set --state")
    eq(r.backend("b3")["state"], "down", "set --state down")
    ok(r.ctl("backend", "up", "b3"), "backend up")

    # -- lookup, user show / pin / forget.
    out = ok(r.ctl("lookup", "Alice"), "lookup")
    la = r.lookup_ok("alice")
    check(la["backend"] in out.split() or la["backend"] in out,
          "lookup prints the backend %s: %r" % (la["backend"], out))
    check("alice" in out, "lookup prints the user: %r" % out)
    js = jsout(r.ctl("--json", "lookup", "alice", "--protocol", "pop3"),
               "lookup --json")
    eq(js, r.lookup_ok("alice", protocol="pop3"), "lookup --json")
    # b2 is the only gold backend and drains: no new gold users (503).
    refused(r.ctl("lookup", "goldie", "--tag", "gold"),
            "lookup in a draining pool")
    ok(r.ctl("backend", "up", "b2"), "backend up b2")
    js = jsout(r.ctl("--json", "lookup", "goldie", "--tag", "gold"),
               "lookup --tag")
    eq(js["backend"], "b2", "lookup --tag gold goes to the gold backend")
    ok(r.ctl("backend", "drain", "b2"), "backend drain b2")

    out = ok(r.ctl("user", "show", "alice"), "user show")
    check(la["backend"] in out and "alice" in out,
          "user show prints user and backend: %r" % out)
    eq(jsout(r.ctl("--json", "user", "show", "ALICE"), "user show --json"),
       r.user("alice"), "user show --json")
    other = "b3" if la["backend"] == "b1" else "b1"
    ok(r.ctl("user", "pin", "alice", other), "user pin")
    u = r.user("alice")
    eq((u["backend"], u["pinned"]), (other, True), "pinned by roostctl")
    eq(r.lookup_ok("alice")["backend"], other, "lookup follows the pin")
    ok(r.ctl("user", "forget", "alice"), "user forget")
    eq(r.user("alice")["assigned"], False, "forgotten by roostctl")
    refused(r.ctl("user", "forget", "alice"), "forget twice")
    refused(r.ctl("user", "pin", "alice", "nope"), "pin to unknown backend",
            field="backend")

    # -- map: every page (more than one page of 1000), or the first N.
    placed = {}
    for i in range(1100):
        n = "map%04d" % i
        placed[n] = r.lookup_ok(n)["backend"]
    placed["goldie"] = "b2"
    out = ok(r.ctl("map"), "map")
    for n, b in placed.items():
        row(out, n, b)
    js = jsout(r.ctl("--json", "map"), "map --json")
    eq(sorted(x["user"] for x in js["users"]), sorted(placed),
       "map --json holds every page")
    eq(js.get("next_cursor"), None, "map --json: no cursor left")
    js = jsout(r.ctl("--json", "map", "--limit", "4"), "map --limit --json")
    eq([x["user"] for x in js["users"]], sorted(placed)[:4],
       "map --limit 4: the first four users")
    out = ok(r.ctl("map", "--limit", "4"), "map --limit 4")
    for n in sorted(placed)[:4]:
        row(out, n, placed[n])
    check(sorted(placed)[4] not in out, "map --limit 4 shows four users")
    on_b1 = sorted(n for n, b in placed.items() if b == "b1")
    check(len(on_b1) > 200, "b1 has users")
    js = jsout(r.ctl("--json", "map", "--backend", "b1"), "map --backend")
    eq(sorted(x["user"] for x in js["users"]), on_b1, "map --backend b1")
    out = ok(r.ctl("map", "--backend", "b1"), "map --backend table")
    for n in on_b1:
        row(out, n, "b1")
    check(not any(n in out.split() for n in placed if n not in on_b1),
          "map --backend b1 shows only b1 users")

    # -- status.
    out = ok(r.ctl("status"), "status")
    row(out, "b1", "up", "150", str(r.backend("b1")["users"]))
    row(out, "b2", "drain", "gold")
    js = jsout(r.ctl("--json", "status"), "status --json")
    st = status(r.api("GET", "/v1/status"), 200, "status")
    eq(js, st, "status --json is the server's answer")

    # -- audit.
    out = ok(r.ctl("audit", "--limit", "3"), "audit")
    js = jsout(r.ctl("--json", "audit", "--limit", "3"), "audit --json")
    eq(len(js["entries"]), 3, "audit --limit 3")
    eq(js, status(r.api("GET", "/v1/audit?limit=3"), 200, "audit"),
       "audit --json is the server's answer")
    row(out, js["entries"][0]["action"], js["entries"][0]["subject"])

    # -- remove.
    before = r.backends()
    n1 = r.backend("b1")["users"]
    check(n1 > 0, "b1 has users")
    err = refused(r.ctl("backend", "remove", "b1"), "remove with users")
    eq(r.backends(), before, "refused remove changed nothing")
    js = jsout(r.ctl("--json", "backend", "remove", "--force", "b1"),
               "remove --force")
    eq(js, {"deleted": "b1", "users_released": n1}, "remove --force answer")
    ok(r.ctl("user", "forget", "goldie"), "forget goldie")
    ok(r.ctl("backend", "remove", "b2"), "remove an empty backend")
    eq([b["name"] for b in r.backends()], ["b3"], "only b3 left")

    # -- server refusals: exit 1, the error on stderr.
    refused(r.ctl("backend", "show", "nope"), "show unknown backend")
    refused(r.ctl("backend", "add", "b3", "--host", "127.0.0.13"),
            "duplicate add")
    refused(r.ctl("backend", "add", "bad name!", "--host", "127.0.0.13"),
            "bad backend name", field="name")
    refused(r.ctl("backend", "set", "b3", "--hostip", "not-an-ip"),
            "bad hostip", field="hostip")
    refused(r.ctl("backend", "down", "nope"), "down unknown backend")
    badtok = os.path.join(r.tmp, "bad.token")
    r._write_secret(badtok, "not-the-token", 0o600)
    refused(r.ctl("backend", "list", token_file=badtok), "wrong token")

    # -- usage errors: exit 2, nothing sent.
    before = r.backends()
    audit_before = status(r.api("GET", "/v1/audit"), 200, "audit")
    usage(r.ctl("frobnicate"), "unknown verb")
    usage(r.ctl("backend", "explode", "b3"), "unknown backend verb")
    usage(r.ctl(), "no verb")
    usage(r.ctl("backend", "add"), "backend add without NAME")
    usage(r.ctl("backend", "show"), "backend show without NAME")
    usage(r.ctl("user", "pin", "alice"), "user pin without BACKEND")
    usage(r.ctl("user", "show"), "user show without USER")
    usage(r.ctl("lookup"), "lookup without USER")
    usage(r.ctl("backend", "set", "b3", "--weight", "abc"), "weight abc")
    usage(r.ctl("backend", "set", "b3", "--weight", "5x"), "weight 5x")
    usage(r.ctl("backend", "set", "b3", "--weight", "1001"), "weight 1001")
    usage(r.ctl("backend", "set", "b3", "--weight"), "weight without value")
    usage(r.ctl("backend", "set", "b3", "--imap-port", "70000"), "port 70000")
    usage(r.ctl("backend", "set", "b3", "--colour", "red"), "unknown option")
    usage(r.ctl("backend", "show", "b3", "extra"), "extra argument")
    usage(r.ctl("map", "--limit", "0"), "map --limit 0")
    usage(r.ctl("user", "show", "alice", "--force"),
          "option of another verb")
    missing = os.path.join(r.tmp, "no-such-key")
    usage(r.ctl("backend", "set", "b3", "--doveadm-key-file", missing),
          "missing key file")
    loose = os.path.join(r.tmp, "loose.token")
    r._write_secret(loose, r.admin_token, 0o644)
    err = usage(r.ctl("backend", "list", token_file=loose),
                "token file readable by others")
    check(r.admin_token not in err, "roostctl printed the token")
    check(loose in err, "roostctl names the loose token file: %r" % err)
    usage(r.ctl("backend", "list", token_file=os.path.join(r.tmp, "nope")),
          "missing token file")
    eq(r.backends(), before, "usage errors changed nothing")
    eq(status(r.api("GET", "/v1/audit"), 200, "audit"), audit_before,
       "usage errors sent nothing")

    # -- no server: exit 3.
    closed = "http://127.0.0.1:%d" % rt.free_port()
    rc, out, err = rc_is(r.ctl("backend", "list", url=closed), 3,
                         "nothing listening")
    check(err.strip() != "", "exit 3 says why on stderr")
    rc_is(r.ctl("status", url="http://127.0.0.1:1"), 3, "port 1")
    srv = http.server.HTTPServer(("127.0.0.1", 0), NotRoost)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        rc_is(r.ctl("backend", "list",
                    url="http://127.0.0.1:%d" % srv.server_address[1]), 3,
              "a server that is not roostd")
    finally:
        srv.shutdown()
        srv.server_close()

    # -- ROOST_URL and ROOST_TOKEN_FILE.
    env = {"ROOST_URL": r.url, "ROOST_TOKEN_FILE": r.admin_token_file}
    out = ok(r.ctl("backend", "list", url=False, token_file=False, env=env),
             "backend list from the environment")
    row(out, "b3", "up")
    ok(r.ctl("backend", "set", "b3", "--weight", "77", url=False,
             token_file=False, env=env), "set from the environment")
    eq(r.backend("b3")["weight"], 77, "set through ROOST_* env")
    rc_is(r.ctl("backend", "list", url=False, token_file=False,
                env={"ROOST_URL": closed,
                     "ROOST_TOKEN_FILE": r.admin_token_file}), 3,
          "ROOST_URL is used")
    refused(r.ctl("backend", "list", url=False, token_file=False,
                  env={"ROOST_URL": r.url, "ROOST_TOKEN_FILE": badtok}),
            "ROOST_TOKEN_FILE is used")
    # Options win over the environment.
    ok(r.ctl("backend", "list", env={"ROOST_URL": closed,
                                     "ROOST_TOKEN_FILE": badtok}),
       "--url and --token-file override the environment")

    # The key was never shown, nor logged.
    r.secrets_absent(KEY, r.admin_token)


rt.run(main)
