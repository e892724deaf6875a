"""The wheel cache: content addressing, atomic commits, per-entry locks shared by threads."""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wheelferry.cache
from tests.support.wheels import build_wheel, sha256_file
from wheelferry.cache import BackgroundHash, LockWaitCancelled, WheelCache
from wheelferry.cli import default_cache_root
from wheelferry.errors import UsageError

SHA = hashlib.sha256(b"x").hexdigest()


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is the Linux convention")
def test_default_cache_root_is_the_users_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "wheelferry"


def test_empty_cache_has_nothing(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    assert cache.path(SHA) is None
    assert cache.partial_path(SHA) == tmp_path / "c" / "partial" / f"{SHA}.part"


def test_add_is_content_addressed_and_keeps_the_name(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "demo", "1.0")
    cache = WheelCache(tmp_path / "c")
    sha, path = cache.add(wheel)
    assert sha == sha256_file(wheel)
    assert path == tmp_path / "c" / "sha256" / sha[:2] / sha / wheel.name
    assert cache.path(sha) == path
    assert path.read_bytes() == wheel.read_bytes()
    assert not cache.partial_path(sha).exists()
    # Adding the same bytes again finds the entry instead of writing it twice.
    assert cache.add(wheel) == (sha, path)


def test_commit_moves_the_file_into_place(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path)
    part = cache.partial_path(SHA)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x")
    final = cache.commit(part, SHA, "x-1.0-py3-none-any.whl")
    assert final.read_bytes() == b"x" and not part.exists()
    assert cache.path(SHA) == final


@pytest.mark.parametrize("name", ["", "../evil.whl", "a/b.whl", ".hidden.whl"])
def test_commit_refuses_names_that_leave_the_entry(tmp_path: Path, name: str) -> None:
    cache = WheelCache(tmp_path)
    with pytest.raises(UsageError):
        cache.commit(tmp_path / "nothing", SHA, name)


def test_a_partial_file_is_not_a_cache_entry(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path)
    part = cache.partial_path(SHA)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half")
    assert cache.path(SHA) is None


@pytest.mark.parametrize("bad", ["", "ABC", "g" * 64, "../" + "a" * 61])
def test_bad_digests_are_usage_errors(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError, match="sha256"):
        WheelCache(tmp_path).path(bad)


def test_evict_removes_an_entry(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "demo", "1.0")
    cache = WheelCache(tmp_path / "c")
    sha, _ = cache.add(wheel)
    cache.evict(sha)
    assert cache.path(sha) is None


def test_the_entry_lock_excludes_other_threads(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with cache.lock(SHA):
            order.append("first in")
            inside.set()
            assert release.wait(120)
            order.append("first out")

    def second() -> None:
        assert inside.wait(120)
        with cache.lock(SHA):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert inside.wait(120)
    assert order == ["first in"]
    release.set()
    for t in threads:
        t.join(120)
    assert order == ["first in", "first out", "second in"]


def test_waiting_for_a_lock_can_be_cancelled(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path)
    cancel = threading.Event()
    with cache.lock(SHA):
        cancel.set()
        errors: list[BaseException] = []

        def waiter() -> None:
            try:
                with cache.lock(SHA, cancel):
                    pass
            except LockWaitCancelled as exc:
                errors.append(exc)

        t = threading.Thread(target=waiter)
        t.start()
        t.join(120)
    assert len(errors) == 1


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wheelferry-hash"]


@given(st.lists(st.binary(max_size=5000), max_size=40), st.integers(1, 4))
@settings(max_examples=50, deadline=None)
def test_a_background_hash_equals_hashlib(chunks: list[bytes], depth: int) -> None:
    bg = BackgroundHash(depth=depth)
    for c in chunks:
        bg.update(c)
    assert bg.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert not _hash_threads()
    bg.update(b"more")  # usable again after a finish: a new thread picks up
    assert bg.hexdigest() == hashlib.sha256(b"".join(chunks) + b"more").hexdigest()
    assert not _hash_threads()


def test_a_failing_background_hash_never_blocks_the_writer_and_is_raised() -> None:
    class Broken:
        def update(self, chunk: bytes) -> None:
            raise MemoryError("no room")

    bg = BackgroundHash(Broken(), depth=1)
    for _ in range(10):  # more chunks than the queue holds: the writer must not block
        bg.update(b"x" * 100)
    with pytest.raises(MemoryError, match="no room"):
        bg.finish()
    assert not _hash_threads()


@pytest.mark.parametrize("background", [False, True], ids=["inline", "own thread"])
def test_a_partial_enters_the_cache_only_when_it_hashes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background: bool) -> None:
    from wheelferry.cache import HTML_PAGE, Partial

    monkeypatch.setattr(wheelferry.cache, "BACKGROUND_HASH_MIN", 0 if background else 1 << 40)
    data = b"PK\x03\x04" + b"wheel bytes" * 100
    sha = hashlib.sha256(data).hexdigest()
    cache = WheelCache(tmp_path)
    part = Partial(cache, sha, len(data))
    part.open(0)
    part.write(data[:100])
    assert bool(_hash_threads()) == background
    part.close()
    assert not _hash_threads()
    assert part.length() == 100 and cache.path(sha) is None
    with pytest.raises(ValueError, match="got 100 bytes"):
        part.commit("w-1.0-py3-none-any.whl")
    assert cache.path(sha) is None

    resumed = Partial(cache, sha, len(data))
    resumed.open(resumed.length())
    resumed.write(data[100:])
    final = resumed.commit("w-1.0-py3-none-any.whl")
    assert final.read_bytes() == data and cache.path(sha, len(data)) == final
    assert not part.path.exists()
    # An entry damaged on disk later is evicted rather than served.
    final.write_bytes(b"x")
    assert cache.path(sha, len(data)) is None and not final.exists()

    page = Partial(cache, hashlib.sha256(b"other").hexdigest(), None)
    page.open(0)
    page.write(b"  <!DOCTYPE html><html>Proxy error</html>")
    page.close()
    assert page.mismatch() == HTML_PAGE
    page.discard()
    assert not _hash_threads()
    assert not page.path.exists()
