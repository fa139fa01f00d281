#!/usr/bin/env python3
"""`make demo`'s stand-in for FLARE: answers the two calls the privacy gate (and the DSF
feasibility process) make, as FLARE v2.8.0 serves them (rest/QueryController.java):
POST /query/execute with an application/sq+json body -> 200 and the count as a bare number;
GET /cache/stats -> 200 JSON. Every query gets the same count, given on the command line.
Usage: demo_flare_stub.py PORT COUNT"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Flare(BaseHTTPRequestHandler):
    def _send(self, status, body, content_type):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/query/execute":
            return self._send(404, '{"error":"not found"}', "application/json")
        if not self.headers.get("Content-Type", "").startswith("application/sq+json"):
            return self._send(415, '{"error":"expects application/sq+json"}', "application/json")
        try:
            json.loads(body)
        except ValueError:
            return self._send(400, '{"error":"not a structured query"}', "application/json")
        self._send(200, str(COUNT), "text/plain")

    def do_GET(self):
        if self.path == "/cache/stats":
            return self._send(200, '{"entryCount":0,"memoryUsageBytes":0}', "application/json")
        self._send(404, '{"error":"not found"}', "application/json")


if __name__ == "__main__":
    COUNT = int(sys.argv[2])
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Flare).serve_forever()
