"""The hand-off from the ingest's network thread to its writer (aggregator/handoff.py): everything arrives once, in
order; a full hand-off holds its producer until the writer has drained it to half; a writer waiting for a batch to
fill is woken by a full batch, not at its deadline; and the stop signal's timeout still works."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from emo7ion.aggregator.handoff import Handoff


def test_many_items_through_a_small_hand_off_arrive_once_in_order_in_batches():
    handoff = Handoff(capacity=100)
    total = 20_000

    def produce():
        for n in range(total):
            handoff.put(n)

    producer = threading.Thread(target=produce)
    producer.start()
    got, batches = [], 0
    while len(got) < total:
        batch = handoff.take(30, first_wait_s=5, fill_wait_s=0.01)
        assert 0 < len(batch) <= 30
        got += batch
        batches += 1
    producer.join(5)
    assert got == list(range(total)) and len(handoff) == 0
    assert batches < total / 5, batches


def test_a_full_hand_off_holds_its_producer_until_drained_to_half():
    handoff = Handoff(capacity=10)
    for n in range(10):
        handoff.put(n)
    done = threading.Event()
    producer = threading.Thread(target=lambda: (handoff.put("late"), done.set()))
    producer.start()
    assert not done.wait(0.2), "put on a full hand-off must block"
    assert handoff.take(3, first_wait_s=0, fill_wait_s=0) == [0, 1, 2]
    assert not done.wait(0.2), "7 left: above half, still held"
    assert handoff.take(2, first_wait_s=0, fill_wait_s=0) == [3, 4]
    assert done.wait(2), "5 left: half, released"
    assert handoff.take(100, first_wait_s=0, fill_wait_s=0) == [5, 6, 7, 8, 9, "late"]
    producer.join(2)


def test_put_on_a_full_hand_off_gives_up_after_its_timeout():
    handoff = Handoff(capacity=2)
    handoff.put(1)
    handoff.put(2)
    started = time.monotonic()
    with pytest.raises(queue.Full):
        handoff.put(3, timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2
    assert handoff.take(10, first_wait_s=0, fill_wait_s=0) == [1, 2]


def test_take_waits_for_the_first_item_then_for_a_full_batch_not_for_each_item():
    handoff = Handoff(capacity=1000)
    started = time.monotonic()
    assert handoff.take(10, first_wait_s=0.2, fill_wait_s=5) == []
    assert 0.15 < time.monotonic() - started < 2

    def feed():
        for n in range(10):
            time.sleep(0.01)
            handoff.put(n)

    feeder = threading.Thread(target=feed)
    feeder.start()
    started = time.monotonic()
    assert handoff.take(10, first_wait_s=5, fill_wait_s=5) == list(range(10))
    assert time.monotonic() - started < 2.5, "woken by the full batch, not by the 5 s deadline"
    feeder.join(2)
