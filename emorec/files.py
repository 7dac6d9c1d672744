"""Files and fingerprints. Files are written so that a crash or a full disk never leaves half of one:
everything emorec keeps (models, cards, tables, caches) goes to a temporary file beside its target,
then is renamed. Fingerprints say what a file or a cached result depends on: bytes, inputs, code."""

from __future__ import annotations

import ast
import gzip
import hashlib
import inspect
import os
import textwrap
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


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


def fingerprint(x: np.ndarray, *settings) -> str:
    """What a fold's saved predictions depend on besides its split: the inputs and the settings."""
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(repr(settings).encode())
    return digest.hexdigest()[:16]


def code_fingerprint(*functions: Callable) -> str:
    """What a result depends on in code: the functions' source without their names, docstrings,
    comments and layout, so a reworded docstring keeps a cross-validation's finished folds while a
    changed line of training trains them again."""
    digest = hashlib.sha256()
    for function in functions:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        tree.body[0].name = "_"  # a function renamed trains the same
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(ast.unparse(tree).encode())
    return digest.hexdigest()[:16]
