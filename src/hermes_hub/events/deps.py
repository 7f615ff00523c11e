"""The process-wide event broker and presence tracker, from ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from hermes_hub.events.broker import EventBroker
from hermes_hub.events.presence import Presence


def get_broker(connection: HTTPConnection) -> EventBroker:
    broker: EventBroker = connection.app.state.event_broker
    return broker


def get_presence(connection: HTTPConnection) -> Presence:
    presence: Presence = connection.app.state.presence
    return presence


PresenceDep = Annotated[Presence, Depends(get_presence)]
