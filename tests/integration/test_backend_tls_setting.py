"""A backend's proxy-to-backend TLS mode (no, yes, starttls) is set over the
API and with roostctl, shown back, carried in every lookup answer for the
backend's users, kept across kill -9, and a bad value is a 400 naming `tls`
that changes nothing."""

import roosttest as rt
from roosttest import check, eq, error


def main(t):
    r = t.roost()

    b1 = r.add_backend("b1", "127.0.0.11")
    eq(b1["tls"], "no", "tls defaults to no")
    b2 = r.add_backend("b2", "127.0.0.12", tls="yes", ports={"imap": 993})
    eq(b2["tls"], "yes", "tls on POST")
    eq(r.backend("b2")["tls"], "yes", "tls in GET")

    # The lookup answer tells the proxy how to reach the backend.
    r.patch_backend("b1", state="down")
    js = r.lookup_ok("alice")
    eq((js["backend"], js["tls"], js["port"]), ("b2", "yes", "993"),
       "lookup answer of a tls=yes backend")
    r.patch_backend("b1", state="up")
    r.patch_backend("b2", state="down")
    js = r.lookup_ok("bob")
    eq((js["backend"], js["tls"]), ("b1", "no"), "lookup answer of tls=no")

    # roostctl sets it and shows it.
    rc, out, err = r.ctl("backend", "set", "b1", "--tls", "starttls")
    eq(rc, 0, "roostctl backend set --tls: %s" % err)
    rc, out, err = r.ctl("backend", "show", "b1")
    eq(rc, 0, "roostctl backend show")
    check(any(ln.split() == ["tls:", "starttls"] for ln in out.splitlines()),
          "backend show lists tls: starttls:\n%s" % out)
    eq(r.lookup_ok("bob")["tls"], "starttls", "a changed tls reaches lookups")
    rc, out, err = r.ctl("backend", "add", "b3", "--host", "127.0.0.13",
                         "--tls", "yes")
    eq(rc, 0, "roostctl backend add --tls: %s" % err)
    eq(r.backend("b3")["tls"], "yes", "tls from backend add")

    # Bad values: 400 naming tls, nothing changed.
    for bad in ("maybe", "", True, 1, "YES"):
        error(r.api("PATCH", "/v1/backends/b1", {"tls": bad, "weight": 7}),
              400, "tls", "tls=%r" % (bad,))
    after = r.backend("b1")
    eq((after["tls"], after["weight"]), ("starttls", 100),
       "a rejected PATCH changed nothing")
    error(r.api("POST", "/v1/backends", {"name": "b4", "host": "127.0.0.14",
                                         "tls": "ssl"}), 400, "tls",
          "POST with a bad tls")
    error(r.api("GET", "/v1/backends/b4"), 404, None, "rejected POST added "
          "nothing")
    rc, out, err = r.ctl("backend", "set", "b1", "--tls", "sometimes")
    eq(rc, 1, "roostctl with a bad --tls is refused by the server")
    check("tls" in err, "the refusal names tls: %r" % err)

    # Durable: kill -9 and restart.
    r.restart()
    eq([(b["name"], b["tls"]) for b in r.backends()],
       [("b1", "starttls"), ("b2", "yes"), ("b3", "yes")],
       "tls after kill -9")
    eq(r.lookup_ok("bob")["tls"], "starttls", "lookup after kill -9")


rt.run(main)
