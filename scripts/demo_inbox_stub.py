#!/usr/bin/env python3
"""`make demo`'s stand-ins for what the proposal inbox talks to (scripts/demo-inbox.sh), on
127.0.0.1 only:
- the central office's decision target (config decisions.url): POST /decisions -> 200; every
  body (the signed decision envelope) is written to OUTDIR/decision-<n>.json;
- webhook targets: POST /hooks/<name> -> 200, logged;
- an SMTP sink for e-mail notifications: EHLO (offers AUTH PLAIN LOGIN), AUTH, MAIL, RCPT, DATA,
  QUIT, each answered as a mail server would; messages are logged, never relayed.
Usage: demo_inbox_stub.py HTTP_PORT SMTP_PORT OUTDIR"""
import asyncio
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUTDIR = sys.argv[3]
counter = {"n": 0}
lock = threading.Lock()


class Target(BaseHTTPRequestHandler):
    def _send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/decisions":
            with lock:
                counter["n"] += 1
                n = counter["n"]
            path = os.path.join(OUTDIR, f"decision-{n}.json")
            with open(path + ".tmp", "wb") as f:
                f.write(body)
            os.rename(path + ".tmp", path)
            print(f"decision target: received decision {n} "
                  f"(Idempotency-Key {self.headers.get('Idempotency-Key')})", flush=True)
            return self._send(200, "{}")
        if self.path.startswith("/hooks/"):
            print(f"webhook {self.path[len('/hooks/'):]}: {body.decode(errors='replace')}", flush=True)
            return self._send(200, "{}")
        return self._send(404, '{"error":"not found"}')

    def log_message(self, *args):
        pass


async def smtp_session(reader, writer):
    def say(line):
        writer.write((line + "\r\n").encode())

    say("220 demo-smtp ESMTP sink")
    await writer.drain()
    while True:
        raw = await reader.readline()
        if not raw:
            break
        line = raw.decode(errors="replace").rstrip("\r\n")
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            say("250-demo-smtp")
            say("250 AUTH PLAIN LOGIN")
        elif verb == "AUTH":
            parts = line.split()
            if len(parts) >= 2 and parts[1].upper() == "LOGIN":
                # Username and password prompts (base64 "Username:" / "Password:").
                say("334 VXNlcm5hbWU6")
                await writer.drain()
                await reader.readline()
                say("334 UGFzc3dvcmQ6")
                await writer.drain()
                await reader.readline()
            elif len(parts) == 2:
                say("334 ")
                await writer.drain()
                await reader.readline()
            say("235 authenticated")
        elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
            say("250 ok")
        elif verb == "DATA":
            say("354 end with <CRLF>.<CRLF>")
            await writer.drain()
            subject = ""
            while True:
                data = (await reader.readline()).decode(errors="replace")
                if data in (".\r\n", ".\n", ""):
                    break
                if data.lower().startswith("subject:"):
                    subject = data.strip()
            print(f"e-mail: {subject}", flush=True)
            say("250 queued")
        elif verb == "QUIT":
            say("221 bye")
            await writer.drain()
            break
        else:
            say("502 not implemented")
        await writer.drain()
    writer.close()


async def smtp(port):
    server = await asyncio.start_server(smtp_session, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main():
    http = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Target)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    asyncio.run(smtp(int(sys.argv[2])))


if __name__ == "__main__":
    main()
