"""The delivery cursor: nothing sent twice, nothing lost to an out-of-order commit."""

from __future__ import annotations

from hermes_hub.events.cursor import MAX_REMEMBERED, DeliveryCursor


def test_nothing_at_or_below_the_start_and_nothing_twice():
    cursor = DeliveryCursor(10)
    assert not cursor.wants(10)
    assert cursor.wants(11)
    cursor.sent(11)
    assert not cursor.wants(11)
    assert cursor.last_id == 11


def test_an_event_committed_after_a_higher_id_is_still_sent():
    cursor = DeliveryCursor(0)
    cursor.sent(11)  # the transaction holding id 10 has not committed yet
    cursor.settle()  # heartbeat 1: settles up to the start (0); remembers 11
    assert cursor.wants(10)
    cursor.sent(10)
    cursor.settle()  # heartbeat 2: ids up to 11 (sent before heartbeat 1) are final
    assert cursor.settled == 11
    assert not cursor.wants(9)
    assert cursor.wants(12)


def test_settling_forgets_the_ids_it_no_longer_needs():
    cursor = DeliveryCursor(0)
    for event_id in range(1, 6):
        cursor.sent(event_id)
    cursor.settle()
    cursor.settle()
    assert cursor.settled == 5
    assert cursor._sent == set()


def test_a_long_replay_settles_instead_of_remembering_every_id():
    cursor = DeliveryCursor(0)
    for event_id in range(1, MAX_REMEMBERED + 2):
        cursor.sent(event_id)
    assert cursor.settled == MAX_REMEMBERED + 1
    assert len(cursor._sent) == 0
