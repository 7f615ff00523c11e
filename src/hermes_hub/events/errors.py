"""Errors of the events domain."""

from __future__ import annotations

from hermes_hub.errors import HubError


class PresenceUnavailableError(HubError):
    status = 503
    code = "presence_unavailable"
