"""Serve a wheel folder with the project's loopback index server until stdin closes.

Run with the repo's .venv Python: ``python indexd.py WHEEL_DIR``; prints the index URL.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import indexserver  # noqa: E402
from tests.support.indexserver import serve_index  # noqa: E402

# The stdlib default accept backlog (5) makes clients that open dozens of
# connections at once (uv) wait for SYN retries; a real index never does that.
indexserver._Server.request_queue_size = 256  # noqa: SLF001
# Its HTTP/1.1 keep-alive answers are written in pieces; without TCP_NODELAY each
# one waits ~40 ms on the client's delayed ACK.
indexserver._Handler.disable_nagle_algorithm = True  # noqa: SLF001


def main() -> int:
    """Print the URL, then serve until the parent closes our stdin."""
    # Project pages may be reused for ten minutes, as public indexes say of theirs.
    with serve_index(Path(sys.argv[1]), mode="both", pep658=True, range=True, max_age=600) as server:
        print(server.url, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
