"""Files written so that a crash or a full disk never leaves half of one: everything emorec keeps
(models, cards, tables, caches) is written to a temporary file beside its target, then renamed."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path to write to (same folder and suffix as ``path``, unique per process): it
    replaces ``path`` when the block succeeds and is removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text)


def content_digest(data: bytes) -> str:
    """A short fingerprint of a file's bytes (the first 16 hex digits of its SHA-256): the same
    photo under another name or in another folder has the same digest."""
    return hashlib.sha256(data).hexdigest()[:16]


def write_digests(path: Path, digests: Iterable[str]) -> None:
    """A set of digests as a sorted, gzipped text file (one per line), written atomically."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(gzip.compress("\n".join(sorted(set(digests))).encode(), mtime=0))


def read_digests(path: Path) -> frozenset[str] | None:
    """The digests ``write_digests`` wrote; None when the file is absent or unreadable (unknown,
    which is not the same as none)."""
    try:
        return frozenset(gzip.decompress(path.read_bytes()).decode().split())
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile):
        return None
