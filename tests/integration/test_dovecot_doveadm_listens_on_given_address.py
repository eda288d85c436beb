"""The shipped snippets keep doveadm's tcp and http listeners (which, with
the doveadm password, reach every user's mail) on the address they are
given, even on a site whose `listen` is `*`: after `listen = *` and a
restart the IMAP listener is on every interface, the doveadm ones are not.
(A restart, not a reload: a reload binds `*` while the old login processes
still hold the instance's address, which Linux refuses now and then.)"""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "rig"))
import riglib  # noqa: E402
import roosttest as rt  # noqa: E402
from roosttest import eq  # noqa: E402

BASE_PORT = 27400


def listening(port):
    """Local addresses with a TCP socket listening on port."""
    found = set()
    for path, fam in (("/proc/net/tcp", socket.AF_INET),
                      ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            p = row.split()
            addr, hport = p[1].split(":")
            if p[3] != "0A" or int(hport, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            # /proc prints each 32-bit word in host byte order
            raw = b"".join(struct.pack("=I", struct.unpack(">I", raw[i:i + 4])[0])
                           for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(fam, raw))
    return found


def main(t):
    r = t.roost()
    with riglib.routed_rig(t, r, BASE_PORT, "u1") as rig:
        for name in rig.proxies + rig.backends:
            with open(rig.inst(name)["extra_config"], "w") as f:
                f.write("listen = *\n")
        rig.restart(*(rig.proxies + rig.backends))
        for name in rig.proxies + rig.backends:
            inst = rig.inst(name)
            ports = inst["ports"]
            riglib.wait_for(
                lambda: listening(ports["imap"]) == {"0.0.0.0"}, 10)
            eq(listening(ports["imap"]), {"0.0.0.0"},
               "%s: after listen = * and a restart, IMAP listens on every "
               "interface" % name)
            for s in ("doveadm", "doveadm_http"):
                eq(listening(ports[s]), {inst["address"]},
                   "%s: %s listens only on %s" % (name, s, inst["address"]))
        # and the proxy still works with doveadm where it was
        eq(riglib.imap_login_from(rig, "p1", "u1")[0], "OK",
           "login through the proxy")


rt.run(main)
