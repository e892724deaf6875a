"""Serve a wheel folder with the project's loopback index server until stdin closes.

Run with the repo's .venv Python: ``python indexd.py WHEEL_DIR``; prints the index URL.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.indexserver import serve_index  # noqa: E402


def main() -> int:
    """Print the URL, then serve until the parent closes our stdin."""
    with serve_index(Path(sys.argv[1]), mode="both", pep658=True, range=True) as server:
        print(server.url, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
