"""A TLS upstream for the real-client tests: it serves HTTPS on a loopback port and writes
every event (TCP connection, TLS handshake, HTTP request with all its headers) to a JSON-lines
file, so a test can prove what did and did not reach it through the proxy's CONNECT tunnel.

Standard library only, so it needs nothing beyond the Python that carries Envoy. It prints
`port <n>` on stdout once it listens and exits when its stdin closes (the test ending), so no
server outlives the test that started it even if the test process dies.
"""

import argparse
import http.server
import json
import os
import socket
import ssl
import sys
import threading

# A client that connects and never finishes the handshake must not hold a thread forever.
HANDSHAKE_TIMEOUT_S = 10


class Events:
    """Appends one JSON object per line; a line is written whole, so readers never see half."""

    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, **event):
        line = json.dumps(event) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        received = {
            "method": self.command,
            "target": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_len": len(body),
        }
        self.server.events.write(event="request", **received)
        out = (json.dumps(received) + "\n").encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, format, *args):
        # The events file is the record; stderr stays for real failures.
        pass


class TlsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context, events):
        self.context = context
        self.events = events
        super().__init__(("127.0.0.1", 0), Handler)

    def get_request(self):
        # Accept plain TCP first and record it: a connection that never becomes TLS (a tunnel
        # the proxy should not have opened) is still seen. The handshake runs in the worker.
        sock, addr = self.socket.accept()
        self.events.write(event="connection")
        return sock, addr

    def process_request_thread(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.events.write(event="handshake_failed", error=str(e))
            self.shutdown_request(request)
            return
        self.events.write(event="handshake", version=tls.version())
        super().process_request_thread(tls, client_address)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    p.add_argument("--key", required=True, help="server private key (PEM)")
    p.add_argument("--events", required=True, help="JSON-lines file to append events to")
    args = p.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = TlsServer(context, Events(args.events))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)

    # Parent gone or done: stdin reaches EOF and the server ends with it.
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
