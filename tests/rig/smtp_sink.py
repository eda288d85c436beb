#!/usr/bin/env python3
"""smtp_sink.py ADDR PORT DIR: the rig's stand-in MTA for Submission relaying.

Dovecot's submission service relays every message to an SMTP server and, in
2.4, connects to it as soon as a user logs in. This accepts everything and
writes each message to DIR/NNNNNN.eml, preceded by X-Rig-Mail-From and
X-Rig-Rcpt-To lines, so tests can see what a client sent through the proxy.
"""

import asyncio
import os
import sys

MAX_LINE = 8192
MAX_MESSAGE = 10 * 1024 * 1024


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = len([n for n in os.listdir(outdir) if n.endswith(".eml")])

    def save(self, mail_from, rcpts, data):
        self.count += 1
        path = os.path.join(self.outdir, "%06d.eml" % self.count)
        head = "X-Rig-Mail-From: %s\r\n" % mail_from + "".join(
            "X-Rig-Rcpt-To: %s\r\n" % r for r in rcpts)
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode() + data)
        os.rename(path + ".tmp", path)

    async def session(self, reader, writer):
        def send(line):
            writer.write((line + "\r\n").encode())

        send("220 rig-smtp-sink ESMTP")
        mail_from, rcpts = None, []
        try:
            while True:
                line = await reader.readline()
                if not line or len(line) > MAX_LINE:
                    break
                cmd = line.decode("latin-1").rstrip("\r\n")
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO", "LHLO"):
                    send("250-rig-smtp-sink")
                    send("250-8BITMIME")
                    send("250-PIPELINING")
                    send("250 SIZE %d" % MAX_MESSAGE)
                elif verb == "MAIL":
                    mail_from, rcpts = cmd[10:].split(" ")[0], []
                    send("250 2.1.0 OK")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].split(" ")[0])
                    send("250 2.1.5 OK")
                elif verb == "DATA":
                    send("354 go ahead")
                    await writer.drain()
                    data = b""
                    while True:
                        l2 = await reader.readline()
                        if not l2 or l2 in (b".\r\n", b".\n"):
                            break
                        if l2.startswith(b".."):
                            l2 = l2[1:]
                        data += l2
                        if len(data) > MAX_MESSAGE:
                            break
                    self.save(mail_from, rcpts, data)
                    send("250 2.0.0 saved")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    break
                elif verb in ("RSET", "NOOP"):
                    send("250 2.0.0 OK")
                else:
                    send("502 5.5.1 not here")
                await writer.drain()
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()


async def main():
    addr, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    sink = Sink(outdir)
    server = await asyncio.start_server(sink.session, addr, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
