"""The air-gapped half: verify, install, audit, probe.

Runs on Python 3.9+ with only the standard library, gpg and the pinned
pure-Python libraries vendored into the offline kit (``wheelferry/_vendor``:
packaging, installer, tomli, cvss; see ``vendor.txt``; and the pure-Python modules of
PyYAML, see ``vendor-purepy.txt``), which the kit carries at its
root so they import by their own names.  It never imports the build half
(requests, resolvelib, tqdm, msgspec, python-gnupg).  ``wheelferry-offline.pyz``
is this package, the vendored libraries and the stdlib-only modules
``errors``, ``urls``, ``interrupt``, ``clikit``, ``files``, ``lockfile``, ``manifest``,
``coremetadata``, ``timestamps`` and ``jsontypes``.
"""

# Modules of the top-level package that the air-gapped half may import.
SHARED_MODULES = ("errors", "urls", "interrupt", "clikit", "files", "lockfile", "manifest", "coremetadata",
                  "timestamps", "jsontypes")
# The vendored libraries (top-level import names) the air-gapped half may import.
VENDORED = ("cvss", "installer", "packaging", "tomli", "yaml")
