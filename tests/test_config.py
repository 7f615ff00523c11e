import stat

import pytest

from hermes_hub.config import (
    Settings,
    UnsafeSettingsError,
    check_production_safety,
    resolve_secret_key,
)


def test_defaults_are_embedded_sqlite(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/hermes.db"
    assert settings.is_sqlite
    assert settings.cors_origins == []
    assert settings.port == 8080


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("HERMES_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()
    assert settings.port == 9123
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("HERMES_PORT", "9200")
    assert Settings().port == 9200


def test_secret_key_is_generated_once_and_private(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first = resolve_secret_key(settings)
    assert len(first) >= 48
    assert resolve_secret_key(Settings(data_dir=tmp_path)) == first
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert resolve_secret_key(Settings(data_dir=tmp_path / "other")) != first
    assert resolve_secret_key(Settings(data_dir=tmp_path, secret_key="explicit")) == "explicit"


def test_prod_refuses_unsafe_settings_and_names_them(tmp_path):
    unsafe = Settings(env="prod", data_dir=tmp_path, cors_origins=["*"])
    with pytest.raises(UnsafeSettingsError) as raised:
        check_production_safety(unsafe)
    message = str(raised.value)
    for name in (
        "HERMES_SECRET_KEY",
        "HERMES_PUBLIC_URL",
        "HERMES_CORS_ORIGINS",
        "HERMES_DATABASE_URL",
        "HERMES_REDIS_URL",
    ):
        assert name in message


def test_prod_accepts_safe_settings():
    safe = Settings(
        env="prod",
        secret_key="s" * 40,
        public_url="https://hub.example.com",
        database_url="postgresql+asyncpg://hub@db/hub",
        redis_url="redis://cache:6379/0",
        cors_origins=["https://ui.example.com"],
    )
    check_production_safety(safe)
    assert not safe.sandbox_payments_enabled
    check_production_safety(Settings(env="dev"))
    assert Settings(env="dev").sandbox_payments_enabled
    with pytest.raises(UnsafeSettingsError, match="HERMES_SANDBOX_PAYMENTS"):
        check_production_safety(safe.model_copy(update={"sandbox_payments": True}))
