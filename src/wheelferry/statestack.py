"""resolvelib's stack of resolution states, kept as changes instead of copies.

resolvelib pushes a copy of its pin mapping and criteria every round and keeps all
of them for backtracking: n rounds of dicts of up to n entries, memory that grows
with the square of the tree (80 MB of a 1,000-package lock).  Below the top a state
never changes until it is popped again, so each one is kept as what its successor
changed (the value each key had before its first change) and rebuilt, by one dict
copy, only when backtracking pops down to it.  The states rebuilt are equal, key
order included, to the copies resolvelib would have kept.
"""

from __future__ import annotations

from typing import Any, NamedTuple

_MISSING: Any = object()


class LoggedDict(dict):  # type: ignore[type-arg]
    """A dict that remembers its own earlier state: each key's value before its first change.

    ``undo`` maps a changed key to its earlier value (``_MISSING`` when it was absent);
    a removal changes the order of keys, so the first one saves the earlier dict whole
    (``whole``) instead.
    """

    __slots__ = ("undo", "whole")

    def __init__(self, data: Any, undo: dict[Any, Any] | None = None, whole: dict[Any, Any] | None = None) -> None:
        super().__init__(data)
        self.undo: dict[Any, Any] = {} if undo is None else undo
        self.whole: dict[Any, Any] | None = whole

    def _note(self, key: Any) -> None:
        if self.whole is None and key not in self.undo:
            self.undo[key] = dict.get(self, key, _MISSING)

    def _removing(self) -> None:
        if self.whole is None:
            self.whole = self.earlier()

    def earlier(self) -> dict[Any, Any]:
        """The dict as it was before the first change (a new dict)."""
        if self.whole is not None:
            return dict(self.whole)
        out = dict(self)
        for key, old in self.undo.items():
            if old is _MISSING:
                del out[key]  # added since: the keys before it keep their order
            else:
                out[key] = old  # replaced in place: its position never moved
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        self._note(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._removing()
        dict.__delitem__(self, key)

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            self._removing()
        return dict.pop(self, key, *default)

    def popitem(self) -> Any:
        self._removing()
        return dict.popitem(self)

    def clear(self) -> None:
        self._removing()
        dict.clear(self)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, other: Any = (), **more: Any) -> None:  # type: ignore[override]
        for key, value in dict(other, **more).items():
            self[key] = value

    def __ior__(self, other: Any) -> LoggedDict:  # type: ignore[misc]
        self.update(other)
        return self

    def copy(self) -> dict[Any, Any]:
        return dict(self)


class _Kept(NamedTuple):
    """A state below the top: its backtrack causes and the change log of its own dicts."""

    causes: list[Any]
    mapping_undo: dict[Any, Any]
    mapping_whole: dict[Any, Any] | None
    criteria_undo: dict[Any, Any]
    criteria_whole: dict[Any, Any] | None


class StateStack:
    """The list of states resolvelib keeps (``_states``): the top whole, the rest as changes.

    Supports what resolvelib does with it: ``[-1]``, ``del [-1]``, ``pop()``, ``len``,
    truth, a push of a copy of the top (``push``) and a full copy (``clone``).
    """

    def __init__(self, make_state: Any, root: Any) -> None:
        self._make = make_state
        self._kept: list[_Kept] = []
        self._top = self._logged(root, _Kept(root.backtrack_causes, {}, None, {}, None))

    def _logged(self, state: Any, log: _Kept) -> Any:
        mapping = LoggedDict(state.mapping, dict(log.mapping_undo), log.mapping_whole)
        criteria = LoggedDict(state.criteria, dict(log.criteria_undo), log.criteria_whole)
        return self._make(mapping=mapping, criteria=criteria, backtrack_causes=log.causes)

    def __len__(self) -> int:
        return len(self._kept) + (self._top is not None)

    def __bool__(self) -> bool:
        return self._top is not None

    def __getitem__(self, index: int) -> Any:
        if self._top is None or index not in (-1, len(self._kept)):
            raise IndexError(index)
        return self._top

    def __delitem__(self, index: int) -> None:
        if self._top is None or index not in (-1, len(self._kept)):
            raise IndexError(index)  # only the top may go
        self.pop()

    def push(self) -> None:
        """A copy of the top goes on top (resolvelib's _push_new_state)."""
        top = self._top
        if top is None:
            raise IndexError("push onto an empty stack")
        m, c = top.mapping, top.criteria
        self._kept.append(_Kept(top.backtrack_causes, dict(m.undo), m.whole, dict(c.undo), c.whole))
        self._top = self._make(mapping=LoggedDict(m), criteria=LoggedDict(c),
                               backtrack_causes=top.backtrack_causes[:])

    def pop(self) -> Any:
        """Take the top off; the state below it is rebuilt from the top and becomes the top."""
        top = self._top
        if top is None:
            raise IndexError("pop from an empty stack")
        if self._kept:
            below = self._kept.pop()
            earlier = self._make(mapping=top.mapping.earlier(), criteria=top.criteria.earlier(),
                                 backtrack_causes=below.causes)
            self._top = self._logged(earlier, below)
        else:
            self._top = None
        return top

    def clone(self) -> StateStack:
        """An independent copy (resolvelib's _save_state copies every state)."""
        out = StateStack.__new__(StateStack)
        out._make = self._make
        out._kept = [k._replace(causes=k.causes[:]) for k in self._kept]
        out._top = None
        if self._top is not None:
            m, c = self._top.mapping, self._top.criteria
            out._top = self._logged(self._top, _Kept(self._top.backtrack_causes[:], m.undo, m.whole,
                                                     c.undo, c.whole))
        return out
