"""hostip follows host: a PATCH that changes host recomputes hostip (the new
address, or "" for a name, which Dovecot then resolves) unless the same
request sets hostip; the lookup answer carries the new address at once; a
GET body sent back as a PATCH is accepted, and changing its host moves a
hostip that was following the host."""

import roosttest as rt
from roosttest import eq, error


def hosts(r, name="b1"):
    b = r.backend(name)
    return b["host"], b["hostip"]


def main(t):
    r = t.roost()
    r.add_backend("b1", "127.0.0.11")
    eq(hosts(r), ("127.0.0.11", "127.0.0.11"), "hostip from an IP host")
    eq(r.lookup_ok("alice")["hostip"], "127.0.0.11", "lookup before")

    r.patch_backend("b1", host="127.0.0.12")
    eq(hosts(r), ("127.0.0.12", "127.0.0.12"), "new IP host, new hostip")
    js = r.lookup_ok("alice")
    eq((js["host"], js["hostip"]), ("127.0.0.12", "127.0.0.12"),
       "lookup answers the new address")

    r.patch_backend("b1", host="mail-b1.example.com")
    eq(hosts(r), ("mail-b1.example.com", ""), "a name clears hostip")

    r.patch_backend("b1", host="127.0.0.13", hostip="127.0.0.99")
    eq(hosts(r), ("127.0.0.13", "127.0.0.99"), "hostip set in the request")
    r.patch_backend("b1", hostip="127.0.0.98")
    eq(hosts(r), ("127.0.0.13", "127.0.0.98"), "hostip alone")
    r.patch_backend("b1", weight=50)
    eq(hosts(r), ("127.0.0.13", "127.0.0.98"), "other fields keep hostip")
    r.patch_backend("b1", host="b1.example.com", hostip="127.0.0.14")
    eq(hosts(r), ("b1.example.com", "127.0.0.14"), "a name with its IP")
    r.patch_backend("b1", host="127.0.0.15")
    eq(hosts(r), ("127.0.0.15", "127.0.0.15"), "back to an IP host")

    # A GET body sent back as a PATCH: accepted, nothing changes.
    body = r.backend("b1")
    st, js = r.api("PATCH", "/v1/backends/b1", body)
    eq(st, 200, "GET body PATCHed back: %r" % js)
    for k in ("host", "hostip", "tag", "weight", "state", "ports"):
        eq(js[k], body[k], "%s after the round trip" % k)
    # ... and with its host edited, the hostip that followed it moves too.
    body["host"] = "127.0.0.16"
    eq(r.api("PATCH", "/v1/backends/b1", body)[0], 200, "edited GET body")
    eq(hosts(r), ("127.0.0.16", "127.0.0.16"), "edited GET body: hostip")
    eq(r.lookup_ok("alice")["hostip"], "127.0.0.16", "lookup follows")

    # The name still cannot change, and a refused PATCH changes nothing.
    body = r.backend("b1")
    body["name"] = "b2"
    error(r.api("PATCH", "/v1/backends/b1", body), 400, "name",
          "renaming through PATCH")
    error(r.api("PATCH", "/v1/backends/b1", {"host": "127.0.0.17",
                                             "weight": -1}), 400, "weight",
          "bad weight with a host change")
    eq(hosts(r), ("127.0.0.16", "127.0.0.16"), "refused PATCHes changed nothing")

    r.restart()
    eq(hosts(r), ("127.0.0.16", "127.0.0.16"), "after kill -9")


rt.run(main)
