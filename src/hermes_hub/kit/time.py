from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current instant as a timezone-aware UTC datetime."""
    return datetime.now(UTC)
