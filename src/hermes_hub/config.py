"""Runtime configuration: every setting is a ``HERMES_*`` environment variable."""

from __future__ import annotations

import contextlib
import os
import secrets
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

SECRET_KEY_FILENAME = "secret_key"  # noqa: S105 - a file name, not a secret
MIN_SECRET_KEY_LENGTH = 32


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERMES_", extra="ignore", frozen=True)

    env: Environment = Environment.DEV
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    redis_pool_size: int = Field(default=64, ge=1, le=10_000)
    secret_key: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8080"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    host: str = "127.0.0.1"
    port: int = Field(
        default=8080, ge=1, le=65535, validation_alias=AliasChoices("HERMES_PORT", "PORT")
    )
    workers: int = Field(default=1, ge=1, le=64)

    access_token_ttl_seconds: int = Field(default=3600, ge=60)
    api_key_ttl_days: int = Field(default=90, ge=1)
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    enrollment_challenge_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Event sockets: a ping, a presence refresh and a re-read of the log this often.
    ws_heartbeat_seconds: float = Field(default=15, gt=0, le=300)

    rate_limit_enabled: bool = True
    rate_limit_default: str = "600/minute"
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "10/hour"
    rate_limit_enroll: str = "30/hour"
    # Requests without credentials to the public catalogue and discovery, per client IP.
    rate_limit_anonymous: str = "60/minute"
    rate_limit_key_prefix: str = Field(default="hermes", pattern=r"^[A-Za-z0-9:_-]{1,64}$")

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    log_level: str = "info"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    metrics_token: SecretStr | None = None

    # Money. Percentages allow two decimals (they are kept as basis points).
    platform_fee_percent: Decimal = Field(default=Decimal("10"), ge=0, le=20, decimal_places=2)
    org_share_percent: Decimal = Field(default=Decimal("0"), ge=0, le=10, decimal_places=2)
    min_withdrawal_credits: Decimal = Field(default=Decimal("10"), gt=0, decimal_places=2)
    max_purchase_credits: Decimal = Field(default=Decimal("10000"), gt=0, decimal_places=2)
    # Unset means on in development and off in production.
    sandbox_payments: bool | None = None
    sandbox_webhook_secret: SecretStr | None = None
    payment_webhook_tolerance_seconds: int = Field(default=300, ge=10, le=3600)
    checkout_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)

    # The mesh: contract deadlines and the scheduler that enforces them.
    auto_settle_seconds: int = Field(default=86_400, ge=1, le=30 * 86_400)
    default_delivery_seconds: int = Field(default=3600, ge=1, le=30 * 86_400)
    scheduler_enabled: bool = True
    scheduler_poll_seconds: float = Field(default=1.0, gt=0, le=60)

    # Trust: how outcomes become a score (the formula is in the README).
    trust_prior_strength: float = Field(default=3.0, ge=0, le=1000)
    trust_half_life_days: float = Field(default=90.0, ge=0, le=36_500)
    trust_requester_cap_min: float = Field(default=3.0, gt=0, le=1_000_000)
    trust_requester_cap_share: float = Field(default=0.2, gt=0, le=1)
    trust_direct_call_weight: float = Field(default=0.1, ge=0, le=1)
    trust_call_recompute_seconds: float = Field(default=60.0, gt=0, le=86_400)
    trust_leaderboard_min_outcomes: int = Field(default=5, ge=0, le=1_000_000)
    trust_rating_edit_days: int = Field(default=7, ge=0, le=365)
    trust_nightly_hour: int = Field(default=3, ge=0, le=23)
    trust_nightly_enabled: bool = True

    # Discovery: semantic search needs the embedding model package; off means lexical only.
    semantic_search: bool = True
    # A sentence-transformers BERT model directory to use instead of the packaged one.
    semantic_model_dir: Path | None = None

    # A2A: outbound calls to agents' endpoints refuse non-public addresses unless this is set
    # (local development and tests only).
    allow_private_endpoints: bool = False
    # How long the hub waits for an agent's answer to one call (streams: between events).
    a2a_call_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    a2a_card_max_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    # The whole card fetch, body included (a server trickling bytes is cut off here).
    a2a_card_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Health checks re-fetch every agent card this often; 0 turns them off.
    a2a_health_interval_seconds: float = Field(default=300.0, ge=0, le=86_400)
    a2a_failures_before_unavailable: int = Field(default=3, ge=1, le=100)
    # How long a worker reuses an allowed call's ACL decision for the same caller and agent.
    a2a_acl_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hermes.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.resolved_database_url).get_backend_name() == "sqlite"

    @property
    def sandbox_payments_enabled(self) -> bool:
        if self.sandbox_payments is None:
            return self.env is not Environment.PROD
        return self.sandbox_payments

    @property
    def jwt_audience(self) -> str:
        return "hermes-hub"

    def unsafe_for_production(self) -> list[str]:
        """Name every setting that must not be used with ``HERMES_ENV=prod``."""
        problems: list[str] = []
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < MIN_SECRET_KEY_LENGTH:
            problems.append(
                f"HERMES_SECRET_KEY must be set explicitly to at least {MIN_SECRET_KEY_LENGTH} "
                "random characters"
            )
        if not self.public_url.startswith("https://"):
            problems.append("HERMES_PUBLIC_URL must be an https:// URL")
        if "*" in self.cors_origins:
            problems.append("HERMES_CORS_ORIGINS must list origins, not '*'")
        if self.is_sqlite:
            problems.append("HERMES_DATABASE_URL must point at PostgreSQL, not SQLite")
        if not self.redis_url:
            problems.append(
                "HERMES_REDIS_URL must be set so rate limits are shared between workers"
            )
        if not self.rate_limit_enabled:
            problems.append("HERMES_RATE_LIMIT_ENABLED must not be false")
        if self.allow_private_endpoints:
            problems.append(
                "HERMES_ALLOW_PRIVATE_ENDPOINTS must not be set: it lets agents' endpoints "
                "point the hub at its own network"
            )
        if self.sandbox_payments is True:
            problems.append(
                "HERMES_SANDBOX_PAYMENTS must be false: the sandbox provider sells credits "
                "for test cards"
            )
        return problems


class UnsafeSettingsError(RuntimeError):
    """Raised when ``HERMES_ENV=prod`` is combined with settings unsafe for production."""


def check_production_safety(settings: Settings) -> None:
    if settings.env is Environment.PROD:
        problems = settings.unsafe_for_production()
        if problems:
            raise UnsafeSettingsError(
                "refusing to start with HERMES_ENV=prod: " + "; ".join(problems)
            )


def resolve_secret_key(settings: Settings) -> str:
    """Return the signing secret, generating and persisting one on first run.

    The generated key is written to a temporary file and hard-linked into place, so
    several workers starting at once agree on one key instead of racing.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    key_path = settings.data_dir / SECRET_KEY_FILENAME
    if key_path.exists():
        return key_path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(48)
    temp_path = key_path.with_name(f".{SECRET_KEY_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(candidate)
    try:
        # Another worker that got here first wins; everyone then reads its key.
        with contextlib.suppress(FileExistsError):
            os.link(temp_path, key_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()
    return key_path.read_text().strip()
