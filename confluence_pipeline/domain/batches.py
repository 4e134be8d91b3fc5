"""Splitting a sequence of ids into the batches a remote API accepts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield consecutive lists of at most `size` items (the last may be shorter; nothing for no items)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch size must be a positive integer, got {size!r}")
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
