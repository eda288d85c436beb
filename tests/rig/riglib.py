"""riglib: small helpers for tests that drive a rig started by tests/rig/rig.

    import sys; sys.path.insert(0, "tests/rig"); import riglib
    rig = riglib.Rig("/tmp/myrig")            # reads DIR/rig.json
    rig.register_backends("http://127.0.0.1:8470", admin_token)
    rig.imap_login("p1", "u1")                # -> ("OK", "a OK [...] Logged in")
    rig.backends_that_saw_login("u1")         # -> ["b1"]

Only the standard library, so the test runner needs nothing installed.
"""

import base64
import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request

RIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rig")


class Rig:
    def __init__(self, rigdir):
        self.dir = os.path.abspath(rigdir)
        with open(os.path.join(self.dir, "rig.json")) as f:
            self.info = json.load(f)
        self.by_name = {i["name"]: i for i in self.info["instances"]}

    def inst(self, name):
        return self.by_name[name]

    @property
    def proxies(self):
        return self.info["proxies"]

    @property
    def backends(self):
        return self.info["backends"]

    def stop(self):
        subprocess.run([RIG, "stop", "--dir", self.dir], check=True)

    # roostd -------------------------------------------------------------

    def register_backends(self, roost_url, admin_token, **overrides):
        """POST every backend of the rig to roostd; overrides are merged
        into each body (e.g. tag="eu"). Returns the HTTP statuses."""
        statuses = []
        for body in self.info["roost_backends"]:
            body = dict(body, **overrides)
            req = urllib.request.Request(
                roost_url.rstrip("/") + "/v1/backends",
                data=json.dumps(body).encode(), method="POST",
                headers={"Authorization": "Bearer " + admin_token})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    statuses.append(r.status)
            except urllib.error.HTTPError as e:
                statuses.append(e.code)
        return statuses

    # protocols ----------------------------------------------------------

    def imap_login(self, name, user, password=None, timeout=15):
        """LOGIN on an instance's IMAP port, then LOGOUT. Returns
        ("OK"|"NO"|"BAD", tagged line). A temporary failure is
        ("NO", "a NO [UNAVAILABLE] ...")."""
        inst = self.inst(name)
        password = self.info["password"] if password is None else password
        with socket.create_connection(
                (inst["address"], inst["ports"]["imap"]),
                timeout=timeout) as s:
            f = s.makefile("rwb")
            f.readline()
            f.write(b"a LOGIN \"%s\" \"%s\"\r\n"
                    % (user.encode(), password.encode()))
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    return ("BYE", "")
                if line.startswith(b"a "):
                    break
            tagged = line.decode(errors="replace").strip()
            f.write(b"b LOGOUT\r\n")
            f.flush()
        return (tagged.split(" ")[1], tagged)

    def backends_that_saw_login(self, user):
        """Backends whose log shows a login of user (any protocol)."""
        pat = re.compile(r"(?:Login|Logged in): user=<%s>" % re.escape(user))
        seen = []
        for b in self.backends:
            try:
                with open(self.inst(b)["log"], errors="replace") as f:
                    if pat.search(f.read()):
                        seen.append(b)
            except OSError:
                pass
        return seen

    # doveadm ------------------------------------------------------------

    def doveadm(self, name, *args, check=False):
        """doveadm for one instance (through chroot on 2.4)."""
        return subprocess.run(self.inst(name)["doveadm_cmd"] + list(args),
                              capture_output=True, text=True, check=check)

    def doveadm_http(self, name, command, params, tag="t"):
        """One command over the doveadm HTTP API. Returns the decoded
        answer, e.g. [["doveadmResponse", [...], "t"]]."""
        inst = self.inst(name)
        key = base64.b64encode(inst["doveadm_api_key"].encode()).decode()
        req = urllib.request.Request(
            inst["doveadm_url"],
            data=json.dumps([[command, params, tag]]).encode(),
            method="POST",
            headers={"Authorization": "X-Dovecot-API " + key,
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def sink_messages(self):
        """Messages that reached the SMTP sink (Submission relay), oldest
        first, as bytes."""
        d = self.info["smtp_sink"]["dir"]
        out = []
        for n in sorted(os.listdir(d)):
            if n.endswith(".eml"):
                with open(os.path.join(d, n), "rb") as f:
                    out.append(f.read())
        return out
