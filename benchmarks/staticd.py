"""A static loopback file server for generated index trees: HTTP/1.1 keep-alive, deep accept queue.

``python staticd.py DIR`` prints the base URL and serves until stdin closes.  Unlike
``python -m http.server`` (HTTP/1.0, an accept backlog of 5), it does not make a
client that opens many connections at once wait for SYN retries.
"""

from __future__ import annotations

import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY a keep-alive
    # client waits ~40 ms per response (Nagle against delayed ACK).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main() -> int:
    """Serve sys.argv[1] on 127.0.0.1 until the parent closes our stdin."""
    handler = functools.partial(_Handler, directory=sys.argv[1])
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
