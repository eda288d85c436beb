"""Tiny fake mail services on loopback for probe scenarios: an IMAP, POP3,
LMTP, Submission or ManageSieve greeting dialogue whose behaviour a test
switches at run time ("ok", "bye", "silent", "refuse").  The IMAP one takes
a LOGIN with any user and one password ("secret" unless given)."""

import os
import socket
import ssl
import subprocess
import threading
import time

GREETING = {
    "imap": b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n",
    "pop3": b"+OK fake ready\r\n",
    "lmtp": b"220 fake LMTP ready\r\n",
    "submission": b"220 fake ESMTP ready\r\n",
    "sieve": b'"IMPLEMENTATION" "fake"\r\n"SIEVE" "fileinto"\r\nOK "ready"\r\n',
}
BYE = {
    "imap": b"* BYE too many connections\r\n",
    "pop3": b"-ERR too many connections\r\n",
    "lmtp": b"421 too busy\r\n",
    "submission": b"421 too busy\r\n",
    "sieve": b'BYE "too busy"\r\n',
}


class FakeService:
    def __init__(self, addr, proto, port=0, mode="ok", tls=None,
                 password="secret"):
        """tls: an ssl.SSLContext for TLS from the first byte (imaps)."""
        self.addr, self.port, self.proto = addr, port, proto
        self.mode = mode
        self.password = password
        self.tls = tls
        self.sessions = 0
        self.lines = []		# what clients sent
        self._lsock = None
        self._stop = False
        self._open()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A listener just closed stays bound while a thread still sits in
        # its accept (at most 0.1 s): try again for a moment.
        for _ in range(40):
            try:
                s.bind((self.addr, self.port))
                break
            except OSError:
                time.sleep(0.05)
        else:
            s.bind((self.addr, self.port))
        self.port = s.getsockname()[1]
        s.listen(64)
        s.settimeout(0.1)
        self._lsock = s

    def set_mode(self, mode):
        if mode == "refuse" and self._lsock is not None:
            self._lsock.close()
            self._lsock = None
        elif mode != "refuse" and self._lsock is None:
            self._open()
        self.mode = mode

    def close(self):
        self._stop = True
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None

    def _accept_loop(self):
        while not self._stop:
            ls = self._lsock
            if ls is None:
                time.sleep(0.05)
                continue
            try:
                c, _ = ls.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        self.sessions += 1
        c.settimeout(5)
        try:
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
            if self.mode == "silent":
                time.sleep(5)
                return
            if self.mode == "bye":
                c.sendall(BYE[self.proto])
                return
            c.sendall(GREETING[self.proto])
            buf = b""
            while True:
                data = c.recv(4096)
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    self.lines.append(line.decode("utf-8", "replace"))
                    if not self._answer(c, line):
                        return
        except OSError:
            pass
        finally:
            c.close()

    def _answer(self, c, line):
        up = line.upper()
        if self.proto == "imap":
            tag = line.split(b" ", 1)[0]
            if b" LOGIN " in up:
                ok = line.endswith(b'"' + self.password.encode() + b'"')
                c.sendall(tag + (b" OK logged in\r\n" if ok else
                                 b" NO [AUTHENTICATIONFAILED] no\r\n"))
                return True
            c.sendall(b"* BYE logging out\r\n" + tag + b" OK bye\r\n")
            return False
        if self.proto in ("lmtp", "submission"):
            if up.startswith(b"LHLO") or up.startswith(b"EHLO"):
                c.sendall(b"250-fake\r\n250 PIPELINING\r\n")
                return True
            c.sendall(b"221 bye\r\n")
            return False
        c.sendall(b"+OK bye\r\n" if self.proto == "pop3" else b'OK "bye"\r\n')
        return False


def server_tls(tmpdir):
    """A server SSLContext with a throw-away self-signed certificate."""
    key = os.path.join(tmpdir, "fake.key")
    crt = os.path.join(tmpdir, "fake.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1",
                    "-subj", "/CN=fake.roost.test"], check=True,
                   capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx
