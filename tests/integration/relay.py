"""A TCP relay for scenarios that put something between two real parties:
it joins each connection it accepts to a target, after an optional delay,
and can cut the next connections that carry a given text with a reset (a
peer that crashed mid-conversation, as a Dovecot process that panics)."""
import socket
import struct
import threading
import time


class Relay:
    """Listens on addr (an ephemeral port, .port) and joins every
    connection to target (host, port).  delay: seconds a new connection is
    held before it is joined.  cut(n, marker): the next n connections
    whose client sends marker are reset once the server has answered what
    followed it."""

    def __init__(self, addr, target, delay=0.0):
        self.target = target
        self.delay = delay
        self.accepted = threading.Event()
        self.connections = 0
        self.cuts = 0		# connections cut so far
        self._lock = threading.Lock()
        self._to_cut = 0
        self._marker = b""
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, n, marker):
        with self._lock:
            self._to_cut = n
            self._marker = marker

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            self.accepted.set()
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        if self.delay:
            time.sleep(self.delay)
        try:
            s = socket.create_connection(self.target, timeout=10)
        except OSError:
            c.close()
            return
        s.settimeout(None)
        state = {"seen": b"", "armed": False}
        threading.Thread(target=self._up, args=(c, s, state),
                         daemon=True).start()
        threading.Thread(target=self._down, args=(s, c, state),
                         daemon=True).start()

    def _up(self, c, s, state):
        """Client to server; arms the cut when the marker goes by."""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if not state["armed"] and self._marker:
                    state["seen"] = (state["seen"] + d)[-4096:]
                    with self._lock:
                        if self._to_cut > 0 and \
                                self._marker in state["seen"]:
                            self._to_cut -= 1
                            state["armed"] = True
                s.sendall(d)
        except OSError:
            pass
        _close(c, s)

    def _down(self, s, c, state):
        """Server to client; after the answer to an armed connection,
        both sides are reset."""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                c.sendall(d)
                if state["armed"]:
                    with self._lock:
                        self.cuts += 1
                    _reset(c)
                    _reset(s)
                    return
        except OSError:
            pass
        _close(c, s)

    def close(self):
        self.sock.close()


def _reset(x):
    """Close with a reset rather than a FIN.  The other thread of the
    connection may be blocked reading x: close() alone would leave the
    socket open until that read returns, so the read is ended first."""
    try:
        x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        x.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    x.close()


def _close(*socks):
    for x in socks:
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
