"""The resolver's state stack: kept as change logs, it must behave as resolvelib's list of copies."""

from __future__ import annotations

import collections
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from resolvelib.structs import State

from wheelferry.statestack import StateStack

KEYS = st.sampled_from("abcdefgh")
OPS = st.lists(st.one_of(
    st.tuples(st.just("pin"), KEYS, st.integers(0, 9)),       # mapping.pop(k); mapping[k] = v
    st.tuples(st.just("crit"), KEYS, st.integers(0, 9)),      # criteria[k] = v
    st.tuples(st.just("update"), st.dictionaries(KEYS, st.integers(0, 9), max_size=3)),
    st.tuples(st.just("popitem")),                            # broken_state.mapping.popitem()
    st.tuples(st.just("cause"), st.integers(0, 9)),           # backtrack_causes[:] = [...]
    st.tuples(st.just("push")),
    st.tuples(st.just("pop")),
    st.tuples(st.just("save")),
    st.tuples(st.just("rollback")),
), max_size=60)


def _copy(s: Any) -> Any:
    return State(mapping=collections.OrderedDict(s.mapping), criteria=dict(s.criteria),
                 backtrack_causes=s.backtrack_causes[:])


def _same(a: Any, b: Any) -> None:
    assert list(a.mapping.items()) == list(b.mapping.items())  # key order counts: popitem takes the last
    assert list(a.criteria.items()) == list(b.criteria.items())
    assert a.backtrack_causes == b.backtrack_causes


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_stack_of_change_logs_matches_a_list_of_copies(ops: list[tuple[Any, ...]]) -> None:
    root = State(mapping=collections.OrderedDict(x=0), criteria={"x": 1, "y": 2}, backtrack_causes=[])
    ref: list[Any] = [_copy(root)]
    ours = StateStack(State, root)
    ref_saved: list[Any] | None = None
    our_saved: StateStack | None = None
    for op in ops:
        if not ref:
            break
        kind = op[0]
        if kind == "pin":
            for s in (ref[-1], ours[-1]):
                s.mapping.pop(op[1], None)
                s.mapping[op[1]] = op[2]
        elif kind == "crit":
            for s in (ref[-1], ours[-1]):
                s.criteria[op[1]] = op[2]
        elif kind == "update":
            for s in (ref[-1], ours[-1]):
                s.criteria.update(op[1])
        elif kind == "popitem":
            if ref[-1].mapping:
                assert ref[-1].mapping.popitem() == ours[-1].mapping.popitem()
        elif kind == "cause":
            for s in (ref[-1], ours[-1]):
                s.backtrack_causes[:] = [op[1]]
        elif kind == "push":
            ref.append(_copy(ref[-1]))
            ours.push()
        elif kind == "pop":
            _same(ref.pop(), ours.pop())
        elif kind == "save":
            ref_saved, our_saved = [_copy(s) for s in ref], ours.clone()
        elif kind == "rollback" and ref_saved is not None and our_saved is not None:
            ref, ours = ref_saved, our_saved
            ref_saved = our_saved = None
        assert len(ref) == len(ours)
        assert bool(ref) == bool(ours)
        if ref:
            _same(ref[-1], ours[-1])
    while ref:  # every state below, rebuilt on the way down, is the copy resolvelib kept
        _same(ref.pop(), ours.pop())
    assert not ours
