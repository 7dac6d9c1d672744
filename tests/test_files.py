"""File helpers (``emorec.files``): the code fingerprint follows code, not docstrings."""

from __future__ import annotations


def _train_a(x):
    """Trains."""
    return x + 1  # a comment


def _train_b(x):
    """Trains, reworded: the same code."""

    return x + 1


def _train_c(x):
    """Trains."""
    return x + 2


def test_code_fingerprint_follows_code_not_docstrings():
    from emorec.files import code_fingerprint

    assert code_fingerprint(_train_a) == code_fingerprint(_train_b)
    assert code_fingerprint(_train_a) != code_fingerprint(_train_c)
    assert code_fingerprint(_train_a, _train_c) != code_fingerprint(_train_c, _train_a)
