"""The one name for data read from JSON or TOML before it is checked (standard library only).

``json.loads`` and ``tomllib.loads`` give dicts, lists, strings, numbers, booleans,
None (and TOML dates) nested to any depth, which no static type states usefully:
their values stay ``Any`` until a reader (lockfile, manifest, osv, policy, rules)
checks them and builds frozen dataclasses.  The same goes for documents being
written (``to_json``), whose values are whatever JSON can hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

JSONValue = Any  # Any: any value json.loads or tomllib.loads can give, checked by its reader
JSONObject = dict[str, Any]  # Any: a JSON object's (or TOML table's) values are any JSON value


def located_objects(raw: JSONValue, where: str, report: Callable[[str, str], None], *,
                    not_list: str = "not a list",
                    not_object: str = "not an object") -> Iterator[tuple[str, JSONObject]]:
    """The objects of the JSON list *raw*, each with its location (``where[i]``).

    What is not a list, and each item that is not an object, is handed to
    ``report(location, not_list | not_object)`` instead; the readers collect these
    and refuse the document once, naming every problem.
    """
    if not isinstance(raw, list):
        report(where, not_list)
        return
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            yield f"{where}[{i}]", item
        else:
            report(f"{where}[{i}]", not_object)
