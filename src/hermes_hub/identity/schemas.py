from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    EmailStr,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from hermes_hub.identity.models import Agent, AgentStatus, OrgRole, UserRole
from hermes_hub.kit.money import credits_to_units, units_to_credits
from hermes_hub.kit.schemas import InputModel, OutputModel
from hermes_hub.kit.text import clean_text

MAX_METADATA_BYTES = 16 * 1024


def _single_line(value: str) -> str:
    return clean_text(value)


def _multi_line(value: str) -> str:
    return clean_text(value, multiline=True)


def _endpoint_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("must not embed credentials")
    return value


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(value.lower() for value in values))


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


CategorySlug = Literal[
    "content-creation",
    "data-analysis",
    "code-generation",
    "image-processing",
    "natural-language",
    "research",
    "automation",
    "customer-service",
    "security",
    "finance",
]
DisplayName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_single_line)]
Description = Annotated[str, Field(max_length=4000), AfterValidator(_multi_line)]
Capability = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/+-]*$")
]
Capabilities = Annotated[list[Capability], Field(max_length=64), AfterValidator(_dedupe)]
EndpointUrl = Annotated[str, Field(max_length=2048), AfterValidator(_endpoint_url)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
Slug = Annotated[
    str, Field(min_length=2, max_length=64, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])$")
]
Credits = Annotated[
    Decimal,
    PlainSerializer(lambda value: float(value), return_type=float, when_used="json"),
]


# ---- users and auth ----


class RegisterRequest(InputModel):
    email: EmailStr = Field(max_length=320)
    password: str = Field(max_length=4096)


class LoginRequest(InputModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=4096)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type
    expires_in: int


class UserOut(OutputModel):
    id: uuid.UUID
    email: str
    role: UserRole
    is_active: bool
    created_at: datetime


class UserAdminUpdate(InputModel):
    role: UserRole | None = None
    is_active: bool | None = None


# ---- agents ----


class Pricing(InputModel):
    base_price: Credits = Field(ge=0, le=1_000_000_000)
    currency: Literal["CRD"] = "CRD"

    @field_validator("base_price")
    @classmethod
    def _two_decimals(cls, value: Decimal) -> Decimal:
        credits_to_units(value)
        return value


class PricingOut(BaseModel):
    base_price: Credits
    currency: str


class EnrollRequest(InputModel):
    name: DisplayName
    description: Description = ""
    public_key: str = Field(max_length=128)
    capabilities: Capabilities = Field(default_factory=list)
    endpoint_url: EndpointUrl | None = None
    organization_id: uuid.UUID | None = None
    metadata: Metadata = Field(default_factory=dict)


class EnrollmentChallenge(BaseModel):
    enrollment_id: uuid.UUID
    challenge: str
    expires_at: datetime


class EnrollmentResponse(InputModel):
    signature: str = Field(max_length=256)


class ApiKeyOut(OutputModel):
    id: uuid.UUID
    prefix: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedApiKey(ApiKeyOut):
    api_key: str = Field(description="The full key. It is shown only once; store it now.")


class EnrollmentResult(BaseModel):
    agent_id: uuid.UUID
    api_key: str = Field(description="The full key. It is shown only once; store it now.")
    key: ApiKeyOut


class NewApiKeyRequest(InputModel):
    revoke_existing: bool = False


class AgentPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    capabilities: list[str]
    endpoint_url: str | None
    pricing: PricingOut | None
    is_public: bool
    status: AgentStatus
    organization_id: uuid.UUID | None
    category: str | None = Field(
        description="The owner's choice of marketplace category; null means automatic."
    )
    created_at: datetime


class AgentPrivate(AgentPublic):
    owner_id: uuid.UUID
    public_key: str
    metadata: dict[str, Any]
    max_calls_per_hour: int | None
    requires_approval: bool
    updated_at: datetime


NON_NULLABLE_AGENT_FIELDS = frozenset(
    {"name", "description", "capabilities", "is_public", "requires_approval", "status"}
)


class AgentUpdate(InputModel):
    name: DisplayName | None = None
    description: Description | None = None
    capabilities: Capabilities | None = None
    endpoint_url: EndpointUrl | None = None
    pricing: Pricing | None = None
    is_public: bool | None = None
    max_calls_per_hour: int | None = Field(default=None, ge=1, le=1_000_000)
    requires_approval: bool | None = None
    # An owner may pause and resume; "banned" is an admin's decision, not a setting.
    status: Literal[AgentStatus.ACTIVE, AgentStatus.PAUSED] | None = None
    metadata: Metadata | None = None
    # One of the marketplace's ten category slugs; null returns to the automatic category.
    category: CategorySlug | None = None

    @model_validator(mode="after")
    def _no_null_for_required_fields(self) -> AgentUpdate:
        # null clears pricing, endpoint_url, max_calls_per_hour and metadata; the other
        # fields always have a value, so an explicit null there is a malformed request.
        nulled = [
            name
            for name in sorted(self.model_fields_set & NON_NULLABLE_AGENT_FIELDS)
            if getattr(self, name) is None
        ]
        if nulled:
            raise ValueError(f"these fields cannot be null: {', '.join(nulled)}")
        return self


def _public_fields(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "capabilities": agent.capabilities,
        "endpoint_url": agent.endpoint_url,
        "pricing": pricing_of(agent.base_price_units, agent.price_currency),
        "is_public": agent.is_public,
        "status": AgentStatus(agent.status),
        "organization_id": agent.organization_id,
        "category": agent.category,
        "created_at": agent.created_at,
    }


def agent_public(agent: Agent) -> AgentPublic:
    return AgentPublic(**_public_fields(agent))


def agent_private(agent: Agent) -> AgentPrivate:
    return AgentPrivate(
        **_public_fields(agent),
        owner_id=agent.owner_id,
        public_key=agent.public_key,
        metadata=agent.agent_metadata,
        max_calls_per_hour=agent.max_calls_per_hour,
        requires_approval=agent.requires_approval,
        updated_at=agent.updated_at,
    )


def pricing_of(base_price_units: int | None, currency: str) -> PricingOut | None:
    if base_price_units is None:
        return None
    return PricingOut(base_price=units_to_credits(base_price_units), currency=currency)


# ---- organizations ----


class OrgCreate(InputModel):
    name: DisplayName
    slug: Slug


class OrgOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    role: OrgRole


class MemberAdd(InputModel):
    email: EmailStr = Field(max_length=320)
    role: OrgRole = OrgRole.MEMBER


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    role: OrgRole
    created_at: datetime
