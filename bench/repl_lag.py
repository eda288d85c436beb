#!/usr/bin/env python3
"""repl_lag.py: replication lag, from an LMTP delivery's 250 to the message
being visible on the replica.

  bench/repl_lag.py --lmtp HOST:PORT --replica-doveadm URL --doveadm-key K
                    --user U [--count N] [--poll-ms 5] [--timeout S]
                    [--json FILE]
  bench/repl_lag.py --rig DIR [--primary b1 --replica b2] [--user U] ...

Delivers N messages, one at a time, each with a fresh Message-ID, to USER
through LMTP (a backend directly, or a proxy that routes to the user's
primary). After each 250 it asks the replica's doveadm HTTP API (`search`
by Message-ID) every --poll-ms until the message is there, and counts the
time from the 250 to the end of the search that found it: the lag is an
upper bound, by at most one search (poll_ms in the report). The next
message is delivered only when the last one arrived or timed out, so every
lag is that of a single change on an idle replica.

--replica-maildir DIR (or --files with --rig) looks in the replica's sdbox
files instead (a directory read every --poll-ms): no doveadm process on the
replica per look, so the probe neither waits for nor slows the dsync it
measures; make bench measures that way, with --poll-ms 1.

Prints the median, p99 (nearest rank) and max in ms, then one JSON line;
--json FILE writes the same JSON with every lag. --rig DIR takes the LMTP
port of --primary and the doveadm URL and key of --replica from a running
rig (tests/rig/rig). Standard library only. Exit 0 when every message
arrived, 1 when some never did (counted as "missing").
"""

import argparse
import base64
import http.client
import json
import math
import os
import secrets
import socket
import sys
import time
import urllib.parse

MAX_COUNT = 10000


def die(msg):
    sys.stderr.write("repl_lag: %s\n" % msg)
    sys.exit(2)


def lmtp_deliver(host, port, user, msg, timeout=30):
    """One LMTP transaction; returns the monotonic time of the final
    reply to DATA, or raises on anything but 250."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        f = s.makefile("rwb")

        def reply():
            for _ in range(100):
                line = f.readline()
                if not line:
                    raise OSError("LMTP: connection closed")
                if line[3:4] != b"-":
                    return line
            raise OSError("LMTP: endless reply")

        def cmd(text, want):
            f.write(text + b"\r\n")
            f.flush()
            r = reply()
            if not r.startswith(want):
                raise OSError("LMTP %s: %s" % (text.split(b" ")[0].decode(),
                                               r.decode(errors="replace")
                                               .strip()))
        r = reply()
        if not r.startswith(b"220"):
            raise OSError("LMTP greeting: %r" % r)
        cmd(b"LHLO repl-lag", b"250")
        cmd(b"MAIL FROM:<repl-lag@example.com>", b"250")
        cmd(b"RCPT TO:<%s>" % user.encode(), b"250")
        cmd(b"DATA", b"354")
        body = msg.replace(b"\r\n.", b"\r\n..")
        f.write(body + b"\r\n.\r\n")
        f.flush()
        r = reply()
        t = time.monotonic()
        if not r.startswith(b"250"):
            raise OSError("LMTP DATA: %s" % r.decode(errors="replace")
                          .strip())
        try:
            f.write(b"QUIT\r\n")
            f.flush()
        except OSError:
            pass
        return t
    finally:
        s.close()


class Doveadm:
    """doveadm HTTP API over one kept-alive connection."""

    def __init__(self, url, key, timeout=10):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            die("--replica-doveadm: want http://HOST:PORT/doveadm/v1")
        self.host, self.port = u.hostname, u.port or 80
        self.path = u.path or "/doveadm/v1"
        self.auth = "X-Dovecot-API " + base64.b64encode(key.encode()) \
            .decode()
        self.timeout = timeout
        self.conn = None

    def call(self, command, params):
        body = json.dumps([[command, params, "t"]])
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", self.path, body, {
                    "Authorization": self.auth,
                    "Content-Type": "application/json"})
                r = self.conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise OSError("doveadm HTTP %d: %r" % (r.status,
                                                           data[:200]))
                return json.loads(data)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        return None

    def has_message(self, user, mailbox, message_id):
        ans = self.call("search", {
            "user": user,
            "query": ["mailbox", mailbox, "header", "Message-ID",
                      message_id]})
        kind, payload = ans[0][0], ans[0][1]
        if kind == "doveadmResponse":
            return len(payload) > 0
        # the user or mailbox may not exist on the replica yet
        return False


class MailFiles:
    """The replica's mail files themselves (sdbox: one file a message
    under mailboxes/MAILBOX/dbox-Mails): a message is there once a file
    holding its Message-ID is.  Looking costs a directory read, not a
    doveadm process on the replica, so the probe neither waits for nor
    slows the dsync it measures."""

    def __init__(self, maildir):
        self.maildir = maildir
        self.seen = {}		# file name -> its Message-ID line

    def has_message(self, user, mailbox, message_id):
        d = os.path.join(self.maildir, "mailboxes", mailbox, "dbox-Mails")
        try:
            names = os.listdir(d)
        except OSError:
            return False
        want = message_id.encode()
        for n in names:
            if not n.startswith("u.") or self.seen.get(n):
                continue
            try:
                with open(os.path.join(d, n), "rb") as f:
                    data = f.read(65536)
            except OSError:
                continue
            self.seen[n] = True
            if want in data:
                return True
        return False


def loadavg():
    """The 1-minute load average: other work on the machine moves lags."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def nearest_rank(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(q * len(sorted_vals)) - 1)]


def from_rig(args):
    try:
        with open(os.path.join(args.rig, "rig.json")) as f:
            rig = json.load(f)
    except (OSError, ValueError) as e:
        die("--rig: %s" % e)
    insts = {i["name"]: i for i in rig["instances"]}
    for n in (args.primary, args.replica):
        if n not in insts:
            die("--rig: no instance %s" % n)
    p, r = insts[args.primary], insts[args.replica]
    args.lmtp = args.lmtp or "%s:%d" % (p["address"], p["ports"]["lmtp"])
    args.replica_doveadm = args.replica_doveadm or r["doveadm_url"]
    args.doveadm_key = args.doveadm_key or r["doveadm_api_key"]
    args.user = args.user or rig["users"][0]
    if args.files and not args.replica_maildir:
        # the rig's users live in MAIL_DIR/USER with mail_path ~/sdbox
        args.replica_maildir = os.path.join(r["mail_dir"], args.user, "sdbox")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lmtp", help="HOST:PORT that takes the deliveries")
    ap.add_argument("--replica-doveadm",
                    help="the replica's doveadm HTTP URL "
                    "(http://HOST:PORT/doveadm/v1)")
    ap.add_argument("--doveadm-key", help="the replica's doveadm_api_key")
    ap.add_argument("--doveadm-key-file",
                    help="file whose first line is the key")
    ap.add_argument("--user")
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--poll-ms", type=float, default=5.0,
                    help="pause between two searches (default 5)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds to wait for one message (default 10)")
    ap.add_argument("--warmup", type=int, default=3,
                    help="deliveries before the measured ones (default 3)")
    ap.add_argument("--json", help="write the report with every lag here")
    ap.add_argument("--label", default="", help="copied into the JSON")
    ap.add_argument("--replica-maildir",
                    help="look for the message in the user's sdbox files "
                    "there (its home's sdbox directory) instead of asking "
                    "the replica's doveadm API")
    ap.add_argument("--files", action="store_true",
                    help="with --rig: look in the replica's mail files "
                    "(--replica-maildir from the rig)")
    ap.add_argument("--rig", help="take the defaults from a running rig")
    ap.add_argument("--primary", default="b1")
    ap.add_argument("--replica", default="b2")
    args = ap.parse_args()
    if args.rig:
        from_rig(args)
    if args.doveadm_key_file and not args.doveadm_key:
        with open(args.doveadm_key_file) as f:
            args.doveadm_key = f.readline().strip()
    for need in ("lmtp", "replica_doveadm", "doveadm_key", "user"):
        if not getattr(args, need):
            die("--%s is needed (or --rig)" % need.replace("_", "-"))
    if not 1 <= args.count <= MAX_COUNT:
        die("--count: 1..%d" % MAX_COUNT)
    if not 0 <= args.poll_ms <= 1000 or not 0 < args.timeout <= 600:
        die("--poll-ms 0..1000, --timeout 0..600")
    host, _, port = args.lmtp.rpartition(":")
    try:
        port = int(port, 10)
    except ValueError:
        die("--lmtp: want HOST:PORT")
    replica = Doveadm(args.replica_doveadm, args.doveadm_key)
    if args.replica_maildir:
        replica = MailFiles(args.replica_maildir)

    lags, polls, missing = [], [], 0
    load_before = loadavg()
    run_id = secrets.token_hex(4)
    for i in range(args.warmup + args.count):
        mid = "<repl-lag-%s-%d-%s@roost.bench>" % (run_id, i,
                                                   secrets.token_hex(6))
        msg = ("From: repl-lag@example.com\r\nTo: %s\r\n"
               "Subject: repl lag %d\r\nMessage-ID: %s\r\n"
               "Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n\r\n"
               "replication lag probe %d\r\n" % (args.user, i, mid, i)) \
            .encode()
        t0 = lmtp_deliver(host, port, args.user, msg)
        end = t0 + args.timeout
        found = None
        while True:
            ts = time.monotonic()
            ok = replica.has_message(args.user, args.mailbox, mid)
            te = time.monotonic()
            polls.append(te - ts)
            if ok:
                found = te
                break
            if te >= end:
                break
            time.sleep(args.poll_ms / 1000.0)
        if i < args.warmup:
            continue
        if found is None:
            missing += 1
        else:
            lags.append((found - t0) * 1000.0)
    s = sorted(lags)
    polls.sort()
    rep = {
        "label": args.label,
        "user": args.user,
        "lmtp": args.lmtp,
        "replica_doveadm": args.replica_doveadm,
        "detect": "mail files" if args.replica_maildir else "doveadm search",
        "count": args.count,
        "arrived": len(lags),
        "missing": missing,
        "median_ms": round(nearest_rank(s, 0.5), 2) if s else None,
        "p99_ms": round(nearest_rank(s, 0.99), 2) if s else None,
        "max_ms": round(s[-1], 2) if s else None,
        "min_ms": round(s[0], 2) if s else None,
        "poll_ms": round(nearest_rank(polls, 0.5) * 1000, 2),
        "poll_interval_ms": args.poll_ms,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }
    if args.count < 100:
        rep["note"] = "fewer than 100 deliveries: a smoke test, not a result"
    print("%d of %d arrived; lag median %s ms, p99 %s ms, max %s ms "
          "(one search takes %s ms)%s" % (
              len(lags), args.count, rep["median_ms"], rep["p99_ms"],
              rep["max_ms"], rep["poll_ms"],
              "; " + rep["note"] if "note" in rep else ""))
    print(json.dumps(rep))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rep, lags_ms=[round(x, 2) for x in lags]), f,
                      indent=1)
            f.write("\n")
    sys.exit(0 if missing == 0 else 1)


if __name__ == "__main__":
    main()
