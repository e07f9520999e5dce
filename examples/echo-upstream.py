#!/usr/bin/env python3
"""A throw-away upstream for trying Sentinel: answers every request with what it received.

The reply's body is the request line, the headers exactly as they arrived, and the size of the
body, so you can see what the proxy and its agents changed. Standard library only.

    python3 echo-upstream.py [--listen 127.0.0.1:9000]
"""
import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def echo(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        lines = [self.requestline] + [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"({len(body)} bytes of body)")
        reply = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = echo

    def log_message(self, format, *args):
        sys.stderr.write(f"upstream: {format % args}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9000", help="host:port (default %(default)s)")
    host, _, port = parser.parse_args().listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Echo)
    print(f"echo upstream listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
