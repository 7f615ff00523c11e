"""Who acts on a contract: a user or an agent, and the user answering for it. Its own module
so that services below the mesh (ratings) can speak of it too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hermes_hub.errors import AuthenticationError
from hermes_hub.events import log as events
from hermes_hub.identity.models import UserRole
from hermes_hub.identity.principal import Principal
from hermes_hub.mesh.models import Contract


@dataclass(frozen=True)
class Party:
    """The principal acting on a contract: a user or an agent, and the user answering for it."""

    user_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    owner_id: uuid.UUID
    is_admin: bool = False

    @classmethod
    def of(cls, principal: Principal) -> Party:
        if principal.agent is not None:
            return cls(user_id=None, agent_id=principal.agent.id, owner_id=principal.agent.owner_id)
        if principal.user is None:
            raise AuthenticationError()
        return cls(
            user_id=principal.user.id,
            agent_id=None,
            owner_id=principal.user.id,
            is_admin=principal.user.role == UserRole.ADMIN.value,
        )

    @property
    def ref(self) -> str:
        if self.agent_id is not None:
            return events.agent_recipient(self.agent_id)
        return events.user_recipient(self.owner_id)

    def is_requester_of(self, contract: Contract) -> bool:
        if self.agent_id is not None:
            return contract.requester_agent_id == self.agent_id
        return contract.requester_user_id == self.user_id
