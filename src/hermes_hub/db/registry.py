"""Import every domain's models so ``Base.metadata`` knows all tables (Alembic reads this)."""

from hermes_hub.a2a import models as a2a_models
from hermes_hub.db.base import Base
from hermes_hub.discovery import models as discovery_models
from hermes_hub.events import models as event_models
from hermes_hub.identity import models as identity_models
from hermes_hub.kit import idempotency as idempotency_models
from hermes_hub.ledger import models as ledger_models
from hermes_hub.mesh import models as mesh_models
from hermes_hub.trust import models as trust_models


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """For Alembic's comparisons: skip schema objects that exist only on some databases."""
    return not (reflected and name in discovery_models.UNMAPPED_SCHEMA_OBJECTS)


__all__ = [
    "Base",
    "a2a_models",
    "discovery_models",
    "event_models",
    "idempotency_models",
    "identity_models",
    "include_object",
    "ledger_models",
    "mesh_models",
    "trust_models",
]
