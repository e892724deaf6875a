"""A strict reader of the small TOML subset a policy file uses, for Python 3.9 and 3.10 (no tomllib).

Standard library only.  It reads ``[table]`` headers, ``key = value`` lines
with bare or quoted keys, basic and literal one-line strings, integers,
booleans, and arrays of those (across lines, trailing comma and comments
allowed).  Anything else is an error naming the line, never a guess.
"""

from __future__ import annotations

import re
from typing import Any

from wheelferry.errors import PolicyFileError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INTEGER = re.compile(r"[+-]?(?:0|[1-9](?:_?[0-9])*)")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def parse_toml_subset(text: str, source: str = "policy") -> dict[str, Any]:
    """Parse the TOML subset a policy uses; anything else is a PolicyFileError naming the line."""
    pos = 0
    root: dict[str, Any] = {}
    table = root

    def fail(what: str) -> PolicyFileError:
        line = text.count("\n", 0, pos) + 1
        return PolicyFileError(f"{source} line {line}: {what}",
                               hint="this Python reads a TOML subset: [tables], key = \"string\" | 123 "
                                    "| true | [\"list\", ...]")

    def skip(newlines: bool) -> None:
        nonlocal pos
        while pos < len(text):
            c = text[pos]
            if c in " \t" or (newlines and c in "\r\n"):
                pos += 1
            elif c == "#":
                while pos < len(text) and text[pos] != "\n":
                    pos += 1
            else:
                return

    def key() -> str:
        nonlocal pos
        if pos < len(text) and text[pos] in "\"'":
            return string()
        m = _BARE_KEY.match(text, pos)
        if not m:
            raise fail("expected a key")
        pos = m.end()
        return m.group(0)

    def string() -> str:
        nonlocal pos
        quote = text[pos]
        pos += 1
        out: list[str] = []
        while True:
            if pos >= len(text) or text[pos] == "\n":
                raise fail("unterminated string")
            c = text[pos]
            pos += 1
            if c == quote:
                return "".join(out)
            if c == "\\" and quote == '"':
                e = text[pos:pos + 1]
                pos += 1
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                elif e in ("u", "U") and re.fullmatch(r"[0-9A-Fa-f]{4,8}", text[pos:pos + (4 if e == "u" else 8)]):
                    n = 4 if e == "u" else 8
                    out.append(chr(int(text[pos:pos + n], 16)))
                    pos += n
                else:
                    raise fail(f"unknown escape \\{e}")
            else:
                out.append(c)

    def value() -> Any:
        nonlocal pos
        if pos < len(text) and text[pos] in "\"'":
            if text.startswith('"""', pos) or text.startswith("'''", pos):
                raise fail("multi-line strings are not supported here")
            return string()
        if text.startswith("[", pos):
            pos += 1
            items: list[Any] = []
            while True:
                skip(True)
                if text.startswith("]", pos):
                    pos += 1
                    return items
                items.append(value())
                skip(True)
                if text.startswith(",", pos):
                    pos += 1
                elif not text.startswith("]", pos):
                    raise fail("expected , or ] in a list")
        for word, v in (("true", True), ("false", False)):
            if text.startswith(word, pos):
                pos += len(word)
                return v
        m = _INTEGER.match(text, pos)
        if m:
            pos = m.end()
            return int(m.group(0).replace("_", ""))
        raise fail("expected a string, integer, boolean or list")

    while True:
        skip(True)
        if pos >= len(text):
            return root
        if text[pos] == "[":
            if text.startswith("[[", pos):
                raise fail("arrays of tables are not supported here")
            pos += 1
            skip(False)
            name = key()
            skip(False)
            if not text.startswith("]", pos):
                raise fail("expected ] after the table name")
            pos += 1
            if name in root:
                raise fail(f"table [{name}] is defined twice")
            table = root[name] = {}
        else:
            name = key()
            skip(False)
            if not text.startswith("=", pos):
                raise fail(f"expected = after {name!r}")
            pos += 1
            skip(False)
            if name in table:
                raise fail(f"key {name!r} is defined twice")
            table[name] = value()
        skip(False)
        if pos < len(text) and text[pos] not in "\r\n":
            raise fail("unexpected text after a value")
