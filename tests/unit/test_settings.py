"""Settings are strict: a misspelt name stops `serve` and `migrate` with a hint, a blank is
unset, production refuses to run without its settings, and every mistake is one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixlive import cli
from pixlive.settings import (
    MIN_SECRET_LENGTH,
    ConfigurationError,
    Settings,
    UnknownSetting,
    check_names,
    env_name,
    known_names,
)

GOOD_SECRET = "s" * MIN_SECRET_LENGTH
PRODUCTION = {
    "PIXLIVE_ENV": "production",
    "PIXLIVE_WEBHOOK_SECRET": GOOD_SECRET,
    "PIXLIVE_PIX_KEY": "financeiro@loja.example",
    "PIXLIVE_MERCHANT_NAME": "Loja",
    "PIXLIVE_MERCHANT_CITY": "Recife",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PIXLIVE_* variable of the machine (CI sets some) and no .env but the test's own."""
    for name in list(os.environ):
        if name.upper().startswith("PIXLIVE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


# unknown names --------------------------------------------------------------------------


def test_a_misspelt_variable_is_named_with_the_closest_known_one() -> None:
    with pytest.raises(UnknownSetting) as caught:
        check_names({"PIXLIVE_BUS_ULR": "redis://127.0.0.1:6379/0", "HOME": "/root"})
    assert str(caught.value) == (
        "unknown setting PIXLIVE_BUS_ULR (did you mean PIXLIVE_BUS_URL?) in the environment"
    )


def test_a_misspelt_variable_in_the_env_file_is_found_there(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PIXLIVE_ENV=sandbox\nPIXLIVE_WEBHOOK_SECERT=abc\n")
    with pytest.raises(UnknownSetting) as caught:
        check_names({})
    message = str(caught.value)
    assert "PIXLIVE_WEBHOOK_SECERT (did you mean PIXLIVE_WEBHOOK_SECRET?)" in message
    assert ".env" in message
    assert "abc" not in message  # the value, which might be a secret, is never shown


def test_a_name_far_from_every_setting_gets_no_hint() -> None:
    with pytest.raises(UnknownSetting) as caught:
        check_names({"PIXLIVE_ZZZZZZZZZZZZ": "1"})
    assert str(caught.value) == "unknown setting PIXLIVE_ZZZZZZZZZZZZ in the environment"


def test_every_mistake_is_reported_at_once_on_one_line() -> None:
    with pytest.raises(UnknownSetting) as caught:
        check_names({"PIXLIVE_PIXKEY": "a", "PIXLIVE_LOG_LEVL": "b"})
    message = str(caught.value)
    assert "\n" not in message
    assert "PIXLIVE_PIXKEY (did you mean PIXLIVE_PIX_KEY?)" in message
    assert "PIXLIVE_LOG_LEVL (did you mean PIXLIVE_LOG_LEVEL?)" in message


def test_every_field_is_a_known_name_so_new_settings_need_no_list() -> None:
    names = {env_name(field): "x" for field in Settings.model_fields}
    assert "PIXLIVE_DATABASE_URL" in names
    check_names(names)
    assert set(known_names()) == set(names)


def test_names_are_read_case_insensitively_as_pydantic_settings_does() -> None:
    check_names({"pixlive_bus_url": "memory://"})
    with pytest.raises(UnknownSetting):
        check_names({"pixlive_bus_ulr": "memory://"})


def test_the_tools_variables_are_not_settings_and_pass() -> None:
    check_names(
        {
            "PIXLIVE_REQUIRE_SERVICES": "1",  # set by .ci/run
            "PIXLIVE_TEST_PG_URL": "postgresql://postgres@127.0.0.1:5432/test",
            "PIXLIVE_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
            "PIXLIVE_BENCH_COMMAND": "make bench",
            "PIXLIVE_UPDATE_SCREENSHOTS": "1",
        }
    )


def test_migrate_stops_on_an_unknown_name_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PIXLIVE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/p.db")
    monkeypatch.setenv("PIXLIVE_DATABSE_URL", "sqlite+aiosqlite:///elsewhere.db")
    assert cli.main(["migrate"]) == 2
    out = capsys.readouterr()
    assert out.err == (
        "pixlive: unknown setting PIXLIVE_DATABSE_URL "
        "(did you mean PIXLIVE_DATABASE_URL?) in the environment\n"
    )
    assert not (tmp_path / "p.db").exists()  # nothing was done


# blanks ---------------------------------------------------------------------------------


def test_a_blank_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(
        monkeypatch,
        {"PIXLIVE_PIX_KEY": "", "PIXLIVE_MAX_BODY_BYTES": "", "PIXLIVE_MERCHANT_CITY": "  "},
    )
    settings = Settings.load()
    assert settings.pix_key is None
    assert settings.max_body_bytes == Settings.model_fields["max_body_bytes"].default
    assert settings.receiver_pix_key == "sandbox@pixlive.example"
    assert settings.receiver_city == "Sao Paulo"


def test_a_blank_line_in_the_env_file_is_unset(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PIXLIVE_WEBHOOK_TOLERANCE_SECONDS=\nPIXLIVE_LOG_LEVEL=debug\n")
    settings = Settings.load()
    assert settings.webhook_tolerance_seconds == 300
    assert settings.log_level == "debug"


# production -----------------------------------------------------------------------------


def test_production_with_its_settings_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, PRODUCTION)
    settings = Settings.load()
    assert not settings.sandbox
    assert settings.secret == GOOD_SECRET


def test_production_names_every_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**PRODUCTION, "PIXLIVE_PIX_KEY": "", "PIXLIVE_MERCHANT_CITY": " "})
    monkeypatch.delenv("PIXLIVE_MERCHANT_NAME")
    with pytest.raises(ConfigurationError) as caught:
        Settings.load()
    assert str(caught.value) == (
        "production mode needs these settings: "
        "PIXLIVE_PIX_KEY, PIXLIVE_MERCHANT_NAME, PIXLIVE_MERCHANT_CITY"
    )


def test_production_refuses_a_short_secret_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    short = "k" * (MIN_SECRET_LENGTH - 1)
    set_env(monkeypatch, {**PRODUCTION, "PIXLIVE_WEBHOOK_SECRET": short})
    with pytest.raises(ConfigurationError) as caught:
        Settings.load()
    message = str(caught.value)
    assert "PIXLIVE_WEBHOOK_SECRET" in message and "32 characters" in message
    assert short not in message and "kkk" not in message


def test_a_three_character_secret_is_fine_in_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXLIVE_WEBHOOK_SECRET", "abc")
    assert Settings.load().secret == "abc"


def test_a_wrong_mode_is_one_line_with_the_accepted_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXLIVE_ENV", "prod")
    with pytest.raises(ConfigurationError) as caught:
        Settings.load()
    assert str(caught.value) == (
        "PIXLIVE_ENV: input should be 'sandbox' or 'production' (got 'prod')"
    )


def test_a_wrong_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {"PIXLIVE_WS_PING_SECONDS": "600", "PIXLIVE_CREATE_BURST": "many"})
    with pytest.raises(ConfigurationError) as caught:
        Settings.load()
    message = str(caught.value)
    assert "\n" not in message
    assert "PIXLIVE_WS_PING_SECONDS: input should be less than or equal to 60" in message
    assert "PIXLIVE_CREATE_BURST: input should be a valid integer" in message


def test_serve_with_a_wrong_setting_prints_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, {**PRODUCTION, "PIXLIVE_WEBHOOK_SECRET": "abc"})
    assert cli.main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pixlive: PIXLIVE_WEBHOOK_SECRET")
    assert "abc" not in err
