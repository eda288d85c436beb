"""The Dovecot proxies are registered in roostd, over HTTP and with roostctl:
added, listed, shown, changed and removed; every change audited; bad input
gets a 400 naming the field, a duplicate 409, an unknown name 404, and a
refused request changes nothing; the doveadm key is never echoed, logged or
audited; the registry survives kill -9."""

import json
import os

import roosttest as rt
from roosttest import check, eq, error, status

KEY1 = "proxy-dovekey-" + "c41e9a07d3b2"
KEY2 = "proxy-dovekey-" + "5f88e1a6b0c9"
KEY3 = "proxy-dovekey-" + "91d2f7c3a8e4"
URL1 = "http://127.0.0.21:8080/doveadm/v1"
URL2 = "https://proxy2.example.com:8443/doveadm/v1"


def ctl_ok(res, what):
    rc, out, err = res
    if rc != 0:
        raise rt.Failure("%s: exit %d\nstdout: %s\nstderr: %s" %
                         (what, rc, out, err))
    return out


def ctl_rc(res, want, what):
    rc, out, err = res
    if rc != want:
        raise rt.Failure("%s: exit %d, want %d\nstdout: %s\nstderr: %s" %
                         (what, rc, want, out, err))
    return err


def proxies(r):
    return status(r.api("GET", "/v1/proxies"), 200, "list proxies")["proxies"]


def audit(r):
    return status(r.api("GET", "/v1/audit"), 200, "audit")["entries"]


def main(t):
    r = t.roost(log_level="debug")
    keyfile = os.path.join(r.tmp, "proxy.key")
    r._write_secret(keyfile, KEY3, 0o600)

    eq(proxies(r), [], "a fresh store has no proxies")
    eq(status(r.api("GET", "/v1/status"), 200, "status")["proxies"], 0,
       "status counts no proxies")

    # -- HTTP: add, out of name order.
    p2 = status(r.api("POST", "/v1/proxies", {
        "name": "p2", "doveadm": {"url": URL1, "api_key": KEY1}}), 201,
        "add p2")
    eq(p2["name"], "p2", "POST answers the proxy")
    eq(p2["doveadm"], {"url": URL1, "api_key_set": True},
       "doveadm: the key only as api_key_set")
    check(isinstance(p2["created"], int) and p2["created"] > 1700000000,
          "created is a unix time: %r" % p2.get("created"))
    eq(p2["updated"], p2["created"], "updated = created on add")
    eq(set(p2), {"name", "doveadm", "created", "updated"}, "proxy fields")
    p1 = status(r.api("POST", "/v1/proxies", {
        "name": "p1", "doveadm": {"url": URL2, "api_key": KEY2}}), 201,
        "add p1")
    eq([p["name"] for p in proxies(r)], ["p1", "p2"], "listed by name")
    eq(status(r.api("GET", "/v1/proxies/p2"), 200, "GET p2"), p2,
       "GET answers what POST answered")
    for p in proxies(r):
        eq(status(r.api("GET", "/v1/proxies/" + p["name"]), 200, "GET one"),
           p, "GET one equals its list entry")
    eq(status(r.api("GET", "/v1/status"), 200, "status")["proxies"], 2,
       "status counts the proxies")

    # -- Refusals: each names its field and changes nothing, audits nothing.
    before, audit_before = proxies(r), audit(r)
    bad = [
        ({"doveadm": {"url": URL1, "api_key": KEY1}}, "name", "no name"),
        ({"name": "bad name!", "doveadm": {"url": URL1, "api_key": KEY1}},
         "name", "bad name"),
        ({"name": "x" * 65, "doveadm": {"url": URL1, "api_key": KEY1}},
         "name", "name too long"),
        ({"name": "p3"}, "doveadm.url", "no doveadm at all"),
        ({"name": "p3", "doveadm": {"api_key": KEY1}}, "doveadm.url",
         "no url"),
        ({"name": "p3", "doveadm": {"url": URL1}}, "doveadm.api_key",
         "no key"),
        ({"name": "p3", "doveadm": {"url": "ftp://x/", "api_key": KEY1}},
         "doveadm.url", "not http(s)"),
        ({"name": "p3", "doveadm": {"url": "", "api_key": KEY1}},
         "doveadm.url", "empty url"),
        ({"name": "p3", "doveadm": {"url": URL1, "api_key": ""}},
         "doveadm.api_key", "empty key"),
        ({"name": "p3", "doveadm": {"url": URL1, "api_key": 5}},
         "doveadm.api_key", "key not a string"),
        ({"name": "p3", "doveadm": {"url": URL1, "api_key": "k" * 1025}},
         "doveadm.api_key", "key too long"),
        ({"name": "p3", "doveadm": "x"}, "doveadm", "doveadm not an object"),
        ({"name": "p3", "doveadm": {"url": URL1, "api_key": KEY1,
                                    "colour": 1}}, "doveadm", "unknown inner"),
        ({"name": "p3", "host": "h", "doveadm": {"url": URL1,
                                                 "api_key": KEY1}},
         "host", "unknown field"),
    ]
    for body, field, what in bad:
        js = error(r.api("POST", "/v1/proxies", body), 400, field, what)
        check(KEY1 not in json.dumps(js), "%s: the key is quoted back" % what)
    error(r.api("POST", "/v1/proxies", raw=b"[1]"), 400, "body",
          "body not an object")
    error(r.api("POST", "/v1/proxies", {
        "name": "p2", "doveadm": {"url": URL2, "api_key": KEY2}}), 409,
        "name", "duplicate proxy")
    error(r.api("GET", "/v1/proxies/nope"), 404, "name", "GET unknown")
    error(r.api("PATCH", "/v1/proxies/nope", {"doveadm": {"url": URL1}}),
          404, "name", "PATCH unknown")
    error(r.api("DELETE", "/v1/proxies/nope"), 404, "name", "DELETE unknown")
    error(r.api("PATCH", "/v1/proxies/p2", {"name": "p9"}), 400, "name",
          "rename")
    error(r.api("PATCH", "/v1/proxies/p2", {"doveadm": {"url": "x"}}), 400,
          "doveadm.url", "PATCH bad url")
    error(r.api("PATCH", "/v1/proxies/p2", {"doveadm": {"api_key": ""}}),
          400, "doveadm.api_key", "PATCH clearing the key")
    error(r.api("PATCH", "/v1/proxies/p2", {"doveadm": {"url": URL2},
                                            "weight": 1}), 400, "weight",
          "PATCH unknown field with a good one")
    error(r.api("PUT", "/v1/proxies/p2", {}), 405, None, "PUT not allowed")
    error(r.api("GET", "/v1/proxies", token="wrong"), 403, None, "wrong token")
    error(r.api("POST", "/v1/proxies", {"name": "p3", "doveadm": {
        "url": URL1, "api_key": KEY1}}, token=None), 401, None, "no token")
    eq(proxies(r), before, "refused requests changed nothing")
    eq(audit(r), audit_before, "refused requests audited nothing")

    # -- PATCH: only what is named changes; a GET body can be sent back.
    p = status(r.api("PATCH", "/v1/proxies/p2", {"doveadm": {"url": URL2}}),
               200, "PATCH url")
    eq(p["doveadm"], {"url": URL2, "api_key_set": True}, "url changed, key "
       "kept")
    eq(p["created"], p2["created"], "created never changes")
    check(p["updated"] >= p2["updated"], "updated moves forward")
    body = dict(p)
    body["doveadm"] = dict(p["doveadm"], url=URL1)
    p = status(r.api("PATCH", "/v1/proxies/p2", body), 200,
               "PATCH with a GET body")
    eq(p["doveadm"]["url"], URL1, "url from a GET-shaped PATCH")
    p = status(r.api("PATCH", "/v1/proxies/p2", {"doveadm": {"api_key":
                                                             KEY2}}),
               200, "PATCH key")
    eq(p["doveadm"], {"url": URL1, "api_key_set": True}, "key replaced")
    eq(status(r.api("GET", "/v1/proxies/p2"), 200, "GET p2"), p,
       "GET shows the PATCH")

    # -- roostctl.
    ctl_ok(r.ctl("proxy", "add", "p3", "--doveadm-url",
                 "http://127.0.0.23:8080/doveadm/v1", "--doveadm-key-file",
                 keyfile), "proxy add")
    p3 = status(r.api("GET", "/v1/proxies/p3"), 200, "GET p3")
    eq(p3["doveadm"], {"url": "http://127.0.0.23:8080/doveadm/v1",
                       "api_key_set": True}, "p3 as roostctl added it")
    out = ctl_ok(r.ctl("proxy", "list"), "proxy list")
    lines = out.splitlines()
    eq(lines[0].split(), ["NAME", "URL", "KEY"], "proxy list header")
    eq([l.split() for l in lines[1:]],
       [["p1", URL2, "set"], ["p2", URL1, "set"],
        ["p3", "http://127.0.0.23:8080/doveadm/v1", "set"]],
       "proxy list rows, by name")
    js = json.loads(ctl_ok(r.ctl("--json", "proxy", "list"), "list --json"))
    eq(js, {"proxies": proxies(r)}, "proxy list --json is the server's answer")
    out = ctl_ok(r.ctl("proxy", "show", "p3"), "proxy show")
    for want in ("p3", "http://127.0.0.23:8080/doveadm/v1", "set"):
        check(want in out, "proxy show lacks %r:\n%s" % (want, out))
    eq(json.loads(ctl_ok(r.ctl("proxy", "show", "p3", "--json"),
                         "show --json")), p3, "proxy show --json")
    ctl_ok(r.ctl("proxy", "set", "p3", "--doveadm-url", URL2), "proxy set")
    eq(status(r.api("GET", "/v1/proxies/p3"), 200, "GET p3")["doveadm"],
       {"url": URL2, "api_key_set": True}, "proxy set changed the url only")
    ctl_ok(r.ctl("proxy", "set", "p3", "--doveadm-key-file", keyfile),
           "proxy set key")

    before, audit_before = proxies(r), audit(r)
    ctl_rc(r.ctl("proxy", "add", "p4", "--doveadm-url", URL1), 2,
           "proxy add without a key file")
    ctl_rc(r.ctl("proxy", "add", "p4", "--doveadm-key-file", keyfile), 2,
           "proxy add without a url")
    ctl_rc(r.ctl("proxy", "set", "p3"), 2, "proxy set with nothing")
    ctl_rc(r.ctl("proxy", "add", "p4", "--doveadm-url", URL1,
                 "--doveadm-key-file", os.path.join(r.tmp, "nope")), 2,
           "missing key file")
    loose = os.path.join(r.tmp, "loose.key")
    r._write_secret(loose, KEY3, 0o644)
    err = ctl_rc(r.ctl("proxy", "add", "p4", "--doveadm-url", URL1,
                       "--doveadm-key-file", loose), 2,
                 "key file readable by others")
    check(loose in err, "roostctl names the loose key file: %r" % err)
    ctl_rc(r.ctl("proxy", "add", "p4", "--doveadm-url", URL1, "--host", "x"),
           2, "option of another verb")
    err = ctl_rc(r.ctl("proxy", "add", "p3", "--doveadm-url", URL1,
                       "--doveadm-key-file", keyfile), 1, "duplicate add")
    err = ctl_rc(r.ctl("proxy", "set", "p3", "--doveadm-url", "ftp://x"), 1,
                 "bad url")
    check("doveadm.url" in err, "roostctl names the field: %r" % err)
    ctl_rc(r.ctl("proxy", "show", "nope"), 1, "show unknown")
    ctl_rc(r.ctl("proxy", "remove", "nope"), 1, "remove unknown")
    eq(proxies(r), before, "refused roostctl calls changed nothing")
    eq(audit(r), audit_before, "refused roostctl calls audited nothing")

    # -- Audit: one action per kind, never the key.
    got = [(e["action"], e["subject"]) for e in reversed(audit(r))
           if e["actor"] == "admin"]
    eq(got, [("proxy.add", "p2"), ("proxy.add", "p1"), ("proxy.set", "p2"),
             ("proxy.set", "p2"), ("proxy.set", "p2"), ("proxy.add", "p3"),
             ("proxy.set", "p3"), ("proxy.set", "p3")], "audit trail")

    # -- kill -9 and restart: the registry is as it was.
    before = proxies(r)
    r.restart()
    eq(proxies(r), before, "proxies survive kill -9")
    eq(status(r.api("GET", "/v1/status"), 200, "status")["proxies"], 3,
       "status after restart")
    out = ctl_ok(r.ctl("status"), "roostctl status")
    check("3 proxies" in out.splitlines()[0],
          "roostctl status counts the proxies: %r" % out)

    # -- Remove.
    eq(status(r.api("DELETE", "/v1/proxies/p1"), 200, "DELETE p1"),
       {"deleted": "p1"}, "delete answer")
    error(r.api("GET", "/v1/proxies/p1"), 404, "name", "p1 gone")
    out = ctl_ok(r.ctl("proxy", "remove", "p3"), "proxy remove")
    check("p3" in out, "proxy remove says what it removed: %r" % out)
    eq([p["name"] for p in proxies(r)], ["p2"], "only p2 left")
    acts = [(e["action"], e["subject"]) for e in audit(r)[:2]]
    eq(acts, [("proxy.remove", "p3"), ("proxy.remove", "p1")],
       "removals audited")
    r.restart()
    eq([p["name"] for p in proxies(r)], ["p2"], "removal survives kill -9")

    audit(r)
    r.secrets_absent(KEY1, KEY2, KEY3)


rt.run(main)
