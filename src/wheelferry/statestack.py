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

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

from resolvelib.structs import RequirementInformation, State

if TYPE_CHECKING:
    from resolvelib.resolvers import Criterion

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
RT = TypeVar("RT")  # resolvelib's requirement,
CT = TypeVar("CT")  # candidate
KT = TypeVar("KT")  # and identifier types


class _Missing(enum.Enum):
    MISSING = "missing"  # a key that was absent


_MISSING = _Missing.MISSING


class LoggedDict(dict[K, V]):
    """A dict that remembers its own earlier state: each key's value before its first change.

    ``undo`` maps a changed key to its earlier value (``_MISSING`` when it was absent);
    a removal changes the order of keys, so the first one saves the earlier dict whole
    (``whole``) instead.
    """

    __slots__ = ("undo", "whole")

    def __init__(self, data: Mapping[K, V], undo: dict[K, V | _Missing] | None = None,
                 whole: dict[K, V] | None = None) -> None:
        super().__init__(data)
        self.undo: dict[K, V | _Missing] = {} if undo is None else undo
        self.whole: dict[K, V] | None = whole

    def _note(self, key: K) -> None:
        if self.whole is None and key not in self.undo:
            self.undo[key] = dict.get(self, key, _MISSING)

    def _removing(self) -> None:
        if self.whole is None:
            self.whole = self.earlier()

    def earlier(self) -> dict[K, V]:
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

    def __setitem__(self, key: K, value: V) -> None:
        self._note(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: K) -> None:
        self._removing()
        dict.__delitem__(self, key)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V, /) -> V: ...
    @overload
    def pop(self, key: K, default: T, /) -> V | T: ...

    def pop(self, key: K, *default: V | T) -> V | T:
        if key in self:
            self._removing()
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[K, V]:
        self._removing()
        return dict.popitem(self)

    def clear(self) -> None:
        self._removing()
        dict.clear(self)

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]  # as dict's: None by default
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    # dict's keyword form (str keys) is left out: the keys are K, and resolvelib never uses it.
    def update(self, other: Mapping[K, V] | Iterable[tuple[K, V]] = (), /) -> None:  # type: ignore[override]
        for key, value in dict(other).items():
            self[key] = value

    # One signature for the two overloads of dict's stub (which ties |= to |): it logs as update does.
    def __ior__(self, other: Mapping[K, V] | Iterable[tuple[K, V]]) -> LoggedDict[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    def copy(self) -> dict[K, V]:
        return dict(self)


class _Kept(Generic[RT, CT, KT]):
    """A state below the top: its backtrack causes and the change log of its own dicts."""

    __slots__ = ("causes", "criteria_undo", "criteria_whole", "mapping_undo", "mapping_whole")

    def __init__(self, causes: list[RequirementInformation[RT, CT]], mapping_undo: dict[KT, CT | _Missing],
                 mapping_whole: dict[KT, CT] | None, criteria_undo: dict[KT, Criterion[RT, CT] | _Missing],
                 criteria_whole: dict[KT, Criterion[RT, CT]] | None) -> None:
        self.causes = causes
        self.mapping_undo = mapping_undo
        self.mapping_whole = mapping_whole
        self.criteria_undo = criteria_undo
        self.criteria_whole = criteria_whole


class StateStack(Generic[RT, CT, KT]):
    """The list of states resolvelib keeps (``_states``): the top whole, the rest as changes.

    Supports what resolvelib does with it: ``[-1]``, ``del [-1]``, ``pop()``, ``len``,
    truth, a push of a copy of the top (``push``) and a full copy (``clone``).  The top's
    ``mapping`` and ``criteria`` are LoggedDicts.
    """

    def __init__(self, make_state: Callable[..., State[RT, CT, KT]], root: State[RT, CT, KT]) -> None:
        self._make = make_state
        self._kept: list[_Kept[RT, CT, KT]] = []
        self._top: State[RT, CT, KT] | None = self._logged(root, _Kept(root.backtrack_causes, {}, None, {}, None))

    def _logged(self, state: State[RT, CT, KT], log: _Kept[RT, CT, KT]) -> State[RT, CT, KT]:
        mapping = LoggedDict(state.mapping, dict(log.mapping_undo), log.mapping_whole)
        criteria = LoggedDict(state.criteria, dict(log.criteria_undo), log.criteria_whole)
        return self._make(mapping=mapping, criteria=criteria, backtrack_causes=log.causes)

    @staticmethod
    def _logs(state: State[RT, CT, KT]) -> tuple[LoggedDict[KT, CT], LoggedDict[KT, Criterion[RT, CT]]]:
        """The top's dicts, which this stack made LoggedDicts."""
        return (cast("LoggedDict[KT, CT]", state.mapping),
                cast("LoggedDict[KT, Criterion[RT, CT]]", state.criteria))

    def __len__(self) -> int:
        return len(self._kept) + (self._top is not None)

    def __bool__(self) -> bool:
        return self._top is not None

    def __getitem__(self, index: int) -> State[RT, CT, KT]:
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
        m, c = self._logs(top)
        self._kept.append(_Kept(top.backtrack_causes, dict(m.undo), m.whole, dict(c.undo), c.whole))
        self._top = self._make(mapping=LoggedDict(m), criteria=LoggedDict(c),
                               backtrack_causes=top.backtrack_causes[:])

    def pop(self) -> State[RT, CT, KT]:
        """Take the top off; the state below it is rebuilt from the top and becomes the top."""
        top = self._top
        if top is None:
            raise IndexError("pop from an empty stack")
        if self._kept:
            below = self._kept.pop()
            m, c = self._logs(top)
            earlier = self._make(mapping=m.earlier(), criteria=c.earlier(), backtrack_causes=below.causes)
            self._top = self._logged(earlier, below)
        else:
            self._top = None
        return top

    def clone(self) -> StateStack[RT, CT, KT]:
        """An independent copy (resolvelib's _save_state copies every state)."""
        out: StateStack[RT, CT, KT] = StateStack.__new__(StateStack)
        out._make = self._make
        out._kept = [_Kept(k.causes[:], k.mapping_undo, k.mapping_whole, k.criteria_undo, k.criteria_whole)
                     for k in self._kept]
        out._top = None
        if self._top is not None:
            m, c = self._logs(self._top)
            out._top = self._logged(self._top, _Kept(self._top.backtrack_causes[:], m.undo, m.whole,
                                                     c.undo, c.whole))
        return out
