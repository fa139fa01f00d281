#!/usr/bin/env python3
"""`make demo`'s stand-in for a site's Blaze, for the site's report to the hub: answers the one
call the reporter makes, a FHIR search with `_summary=count` (FHIR R4 search, as Blaze serves it):
GET /fhir/<Type>?_summary=count -> 200 and a searchset Bundle whose `total` is the count.
Counts come from the command line as JSON; a type not listed has 0.
Usage: demo_blaze_stub.py PORT '{"Patient": 48000, ...}'"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit


class Blaze(BaseHTTPRequestHandler):
    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        m = re.fullmatch(r"/fhir/([A-Z][A-Za-z]*)", url.path)
        if not m or url.query != "_summary=count":
            return self._send(404, {"resourceType": "OperationOutcome"})
        self._send(200, {"resourceType": "Bundle", "type": "searchset",
                         "total": COUNTS.get(m.group(1), 0)})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    COUNTS = json.loads(sys.argv[2])
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Blaze).serve_forever()
