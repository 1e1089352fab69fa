"""The import's reading thread: items in order, the producer's error raised in the consumer, no thread left."""

from __future__ import annotations

import threading

import pytest

from curation.importers.ahead import ReadAhead


def test_items_arrive_in_order_across_chunks():
    with ReadAhead(range(1000), chunk=7, depth=2) as ahead:
        assert list(ahead) == list(range(1000))


def test_the_producers_error_is_raised_after_the_items_before_it():
    def items():
        yield from range(10)
        raise ValueError("line 11 is broken")

    seen = []
    with ReadAhead(items(), chunk=4) as ahead, pytest.raises(ValueError, match="line 11"):
        for item in ahead:
            seen.append(item)
    assert seen == list(range(10))


def test_a_consumer_that_stops_early_leaves_no_thread_behind():
    before = threading.active_count()
    endless = iter(int, 1)  # never ends
    with ReadAhead(endless, chunk=3, depth=2) as ahead:
        for index, _ in enumerate(ahead):
            if index == 50:
                break
    assert threading.active_count() == before
