"""Which event ids a socket has sent, so the log and the live feed never send one twice.

Ids are handed out at insert, but transactions commit in any order: an event can become
visible after one with a higher id was already sent. Dropping every id at or below the
highest one sent would lose it. So the cursor remembers the ids it sent recently, and an
id only becomes *settled* (never sent from then on) one full heartbeat after a higher id
was sent: a transaction has at least that long to commit its event and still be delivered,
live or by the heartbeat's re-read of the log from ``settled``. Pure: no I/O, no clock.
"""

from __future__ import annotations

# Past this many remembered ids (a long replay), settle at once rather than grow.
MAX_REMEMBERED = 10_000


class DeliveryCursor:
    def __init__(self, after_id: int) -> None:
        # Ids at or below ``settled`` are never sent; re-reads of the log start there.
        self.settled = after_id
        # The highest id sent so far: what a client passes back as ``last_event_id``.
        self.last_id = after_id
        self._checkpoint = after_id
        self._sent: set[int] = set()

    def wants(self, event_id: int) -> bool:
        return event_id > self.settled and event_id not in self._sent

    def sent(self, event_id: int) -> None:
        self._sent.add(event_id)
        self.last_id = max(self.last_id, event_id)
        if len(self._sent) > MAX_REMEMBERED:
            self._settle_to(self.last_id)

    def settle(self) -> None:
        """Call once per heartbeat, after re-reading the log from ``settled``.

        Settles everything up to the highest id sent as of the previous call.
        """
        self._settle_to(self._checkpoint)
        self._checkpoint = self.last_id

    def _settle_to(self, event_id: int) -> None:
        if event_id > self.settled:
            self.settled = event_id
            self._sent = {sent for sent in self._sent if sent > event_id}
