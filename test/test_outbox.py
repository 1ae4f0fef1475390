"""The hand-over from the node's inference thread to its publishing thread: in order, never
dropped, the producer held back while the slot is full, both sides released by ``close``."""
from __future__ import annotations

import threading
import time

from mtl_perception.ros.outbox import Outbox


def _join(thread: threading.Thread) -> None:
    thread.join(timeout=30)
    assert not thread.is_alive(), "a side of the outbox is still waiting"


def test_every_item_arrives_once_in_order_with_a_slow_consumer():
    outbox: Outbox[int] = Outbox()
    received: list[int] = []
    release = threading.Semaphore(0)

    def consume() -> None:
        while (item := outbox.take()) is not None:
            release.acquire()  # the consumer goes at the pace the test sets
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    producer = threading.Thread(target=lambda: [outbox.put(i) for i in range(20)])
    producer.start()
    for _ in range(20):
        release.release()
    _join(producer)
    deadline = time.monotonic() + 30  # a lost item would leave the consumer waiting: fail, not hang
    while len(received) < 20 and time.monotonic() < deadline:
        consumer.join(timeout=0.01)
    outbox.close()
    _join(consumer)
    assert received == list(range(20))


def test_put_waits_while_the_slot_is_full_and_take_frees_it():
    outbox: Outbox[str] = Outbox()
    assert outbox.put("first")
    second_in = threading.Event()
    producer = threading.Thread(target=lambda: outbox.put("second") and second_in.set())
    producer.start()
    assert not second_in.wait(timeout=0.2)  # held back: "first" was not taken yet
    assert outbox.take() == "first"
    _join(producer)
    assert second_in.is_set()
    assert outbox.take() == "second"


def test_close_releases_a_waiting_producer_and_a_waiting_consumer():
    full: Outbox[int] = Outbox()
    full.put(1)
    results: list[object] = []
    producer = threading.Thread(target=lambda: results.append(full.put(2)))
    empty: Outbox[int] = Outbox()
    consumer = threading.Thread(target=lambda: results.append(empty.take()))
    producer.start()
    consumer.start()
    full.close()
    empty.close()
    _join(producer)
    _join(consumer)
    assert sorted(results, key=str) == [False, None]
    assert full.put(3) is False and full.take() is None  # closed for good, pending item discarded
