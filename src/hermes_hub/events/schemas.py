"""Response bodies of the events domain's HTTP routes."""

from __future__ import annotations

import uuid

from pydantic import BaseModel


class AgentPresence(BaseModel):
    agent_id: uuid.UUID
    online: bool
