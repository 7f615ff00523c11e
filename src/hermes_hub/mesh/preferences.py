"""Requester preferences: how bids are weighed at award, with presets. One row per principal."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.errors import NotFoundError
from hermes_hub.mesh.models import Preferences
from hermes_hub.mesh.scoring import Filters, Weights


@dataclass(frozen=True)
class PreferenceValues:
    price_weight: float
    performance_weight: float
    speed_weight: float
    reputation_weight: float
    max_price_units: int | None = None
    min_confidence: float | None = None
    min_reputation: float | None = None
    preset: str | None = None

    @property
    def weights(self) -> Weights:
        return Weights.normalize(
            price=self.price_weight,
            performance=self.performance_weight,
            speed=self.speed_weight,
            reputation=self.reputation_weight,
        )

    @property
    def filters(self) -> Filters:
        return Filters(
            max_price_units=self.max_price_units,
            min_confidence=self.min_confidence,
            min_reputation=self.min_reputation,
        )


PRESETS: dict[str, PreferenceValues] = {
    "balanced": PreferenceValues(25, 25, 25, 25, preset="balanced"),
    "cheapest": PreferenceValues(70, 10, 10, 10, preset="cheapest"),
    "fastest": PreferenceValues(10, 10, 70, 10, preset="fastest"),
    "premium": PreferenceValues(5, 40, 10, 45, preset="premium"),
}
DEFAULT = PRESETS["balanced"]


class UnknownPresetError(NotFoundError):
    code = "preset_not_found"


def _values(row: Preferences) -> PreferenceValues:
    return PreferenceValues(
        price_weight=row.price_weight,
        performance_weight=row.performance_weight,
        speed_weight=row.speed_weight,
        reputation_weight=row.reputation_weight,
        max_price_units=row.max_price_units,
        min_confidence=row.min_confidence,
        min_reputation=row.min_reputation,
        preset=row.preset,
    )


async def get_preferences(session: AsyncSession, owner_ref: str) -> PreferenceValues:
    """The principal's preferences; the balanced preset until they set any."""
    row = await session.get(Preferences, owner_ref)
    return _values(row) if row is not None else DEFAULT


async def put_preferences(
    session: AsyncSession, owner_ref: str, values: PreferenceValues
) -> PreferenceValues:
    # Normalizing refuses all-zero weights before anything is written.
    values.weights  # noqa: B018
    row = await session.get(Preferences, owner_ref, with_for_update=True)
    if row is None:
        row = Preferences(owner_ref=owner_ref)
        session.add(row)
    row.price_weight = values.price_weight
    row.performance_weight = values.performance_weight
    row.speed_weight = values.speed_weight
    row.reputation_weight = values.reputation_weight
    row.max_price_units = values.max_price_units
    row.min_confidence = values.min_confidence
    row.min_reputation = values.min_reputation
    row.preset = values.preset
    await session.flush()
    return _values(row)


async def apply_preset(session: AsyncSession, owner_ref: str, name: str) -> PreferenceValues:
    """Set the preset's weights; keep the principal's filters."""
    preset = PRESETS.get(name)
    if preset is None:
        raise UnknownPresetError(
            f"No preset named {name!r}; choose one of {', '.join(sorted(PRESETS))}."
        )
    current = await get_preferences(session, owner_ref)
    return await put_preferences(
        session,
        owner_ref,
        PreferenceValues(
            price_weight=preset.price_weight,
            performance_weight=preset.performance_weight,
            speed_weight=preset.speed_weight,
            reputation_weight=preset.reputation_weight,
            max_price_units=current.max_price_units,
            min_confidence=current.min_confidence,
            min_reputation=current.min_reputation,
            preset=name,
        ),
    )
