"""The one name for data read from JSON or TOML before it is checked (standard library only).

``json.loads`` and ``tomllib.loads`` give dicts, lists, strings, numbers, booleans,
None (and TOML dates) nested to any depth, which no static type states usefully:
their values stay ``Any`` until a reader (lockfile, manifest, osv, policy, rules)
checks them and builds frozen dataclasses.  The same goes for documents being
written (``to_json``), whose values are whatever JSON can hold.
"""

from __future__ import annotations

from typing import Any

JSONValue = Any  # Any: any value json.loads or tomllib.loads can give, checked by its reader
JSONObject = dict[str, Any]  # Any: a JSON object's (or TOML table's) values are any JSON value
