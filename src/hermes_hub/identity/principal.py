"""Who is making a request: a user (JWT) or an agent (API key)."""

from __future__ import annotations

from dataclasses import dataclass

from hermes_hub.identity.models import Agent, AgentApiKey, User, UserRole


@dataclass(frozen=True)
class Principal:
    user: User | None = None
    agent: Agent | None = None
    api_key: AgentApiKey | None = None

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.role == UserRole.ADMIN.value

    @property
    def rate_limit_key(self) -> str:
        if self.user is not None:
            return f"user:{self.user.id}"
        if self.agent is not None:
            return f"agent:{self.agent.id}"
        raise ValueError("anonymous principal")
