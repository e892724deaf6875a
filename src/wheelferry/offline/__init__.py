"""The air-gapped half: verify, install, audit, probe.

Runs on Python 3.9+ with only the standard library, pip, gpg (and optionally
python-gnupg); it never imports the build half (requests, resolvelib, packaging,
tqdm).  ``wheelferry-offline.pyz`` is this package plus the stdlib-only modules
``errors``, ``urls``, ``clikit``, ``files``, ``lockfile`` and ``manifest``.
"""

# Modules of the top-level package that the air-gapped half may import.
SHARED_MODULES = ("errors", "urls", "clikit", "files", "lockfile", "manifest")
