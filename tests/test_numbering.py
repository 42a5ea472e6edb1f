"""Protocol number formats, check digit, validation and start-up configuration."""

from __future__ import annotations

from datetime import date

import pytest

from sac_ivr.config import ConfigError
from sac_ivr.features import load_settings
from sac_ivr.protocols.numbering import (
    AnsLayout,
    DateSequenceCheck,
    GlobalSequence,
    InvalidProtocolNumber,
    spoken_groups,
)

DAY = date(2026, 11, 22)


def test_default_format_is_date_sequence_and_damm_check_digit() -> None:
    fmt = DateSequenceCheck()
    number = fmt.render(DAY, 123)
    assert number[:14] == "20261122000123"
    assert len(number) == 15
    # Damm: the digit that makes the interim value 0 (worked out by hand for the README)
    assert fmt.validate(number) == number


@pytest.mark.parametrize("position", range(15))
def test_every_single_digit_error_is_caught(position: int) -> None:
    fmt = DateSequenceCheck()
    number = fmt.render(DAY, 4821)
    for wrong in "0123456789":
        if wrong == number[position]:
            continue
        typo = number[:position] + wrong + number[position + 1 :]
        with pytest.raises(InvalidProtocolNumber):
            fmt.validate(typo)


def test_every_adjacent_swap_is_caught() -> None:
    fmt = DateSequenceCheck()
    for seq in (1, 90, 4821, 999999):
        number = fmt.render(DAY, seq)
        for i in range(14):
            if number[i] == number[i + 1]:
                continue
            swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
            with pytest.raises(InvalidProtocolNumber):
                fmt.validate(swapped)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("2026112200012", "15 to 18 digits"),
        ("2026112200012a4", "digits only"),
        ("２０２６１１２２０００１２３４", "digits only"),  # full-width digits
        ("9" * 200, "far too long"),
        ("20261322000123", "15 to 18 digits"),
    ],
)
def test_malformed_numbers_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidProtocolNumber, match=reason):
        DateSequenceCheck().validate(text)


def test_invalid_date_is_refused_even_with_a_valid_check_digit() -> None:
    from stdnum import damm

    body = "20261322000123"  # month 13
    with pytest.raises(InvalidProtocolNumber, match="not a valid date"):
        DateSequenceCheck().validate(body + damm.calc_check_digit(body))


def test_overflow_grows_the_number_and_stays_valid() -> None:
    fmt = DateSequenceCheck()
    assert not fmt.overflowed(999_999)
    assert fmt.overflowed(1_000_000)
    number = fmt.render(DAY, 1_000_000)
    assert len(number) == 16
    assert fmt.validate(number) == number
    assert number != fmt.render(DAY, 100_000)


def test_ans_layout() -> None:
    fmt = AnsLayout(registry="123456")
    number = fmt.render(DAY, 42)
    assert number == "12345620261122000042"
    assert fmt.validate(number) == number
    with pytest.raises(InvalidProtocolNumber, match="registry 654321"):
        fmt.validate("65432120261122000042")


def test_global_sequence() -> None:
    fmt = GlobalSequence(width=8)
    assert fmt.render(DAY, 7) == "00000007"
    assert fmt.counter_key(DAY) == fmt.counter_key(date(2030, 1, 1)) == "global"
    assert fmt.render(DAY, 100_000_000) == "100000000"
    with pytest.raises(InvalidProtocolNumber):
        fmt.validate("00000000")


def test_daily_formats_count_per_local_day() -> None:
    fmt = DateSequenceCheck()
    assert fmt.counter_key(DAY) != fmt.counter_key(date(2026, 11, 23))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"protocol_format": "uuid"}, "protocol_format"),
        ({"protocol_format": "ans"}, "ans_registry"),
        ({"protocol_format": "ans", "ans_registry": "12345"}, "ans_registry"),
        ({"protocol_format": "sequence", "protocol_sequence_width": "2"}, "4 to 30"),
        ({"timezone": "America/Nowhere"}, "timezone"),
        ({"agi_port": "70000"}, "agi_port"),
        ({"agi_port": "abc"}, "agi_port"),
        ({"no_such_setting": "1"}, "unknown setting"),
    ],
)
def test_bad_configuration_is_refused_at_start_up(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, overrides=overrides)


def test_settings_from_toml_and_environment(tmp_path) -> None:
    config = tmp_path / "sac.toml"
    config.write_text('protocol_format = "ans"\n[ami]\nenabled = true\nport = 5039\n')
    settings = load_settings(
        config_file=config,
        env={
            "SAC_IVR_ANS_REGISTRY": "999999",
            "SAC_IVR_AMI_PORT": "5040",
            "SAC_IVR_AMI_SECRET": "x",
        },
    )
    assert settings.protocol_format == "ans"
    assert settings.ans_registry == "999999"
    assert settings.ami_enabled is True
    assert settings.ami_port == 5040  # the environment wins over the file


def test_secrets_are_masked_in_the_loggable_view() -> None:
    settings = load_settings(env={"SAC_IVR_AMI_SECRET": "s3cr3t"})
    assert "s3cr3t" not in repr(settings.redacted())


@pytest.mark.parametrize(
    ("number", "size", "groups"),
    [
        ("202611220001234", 3, ["202", "611", "220", "001", "234"]),
        ("2026112200012345", 3, ["202", "611", "220", "001", "2345"]),
        ("12345678", 4, ["1234", "5678"]),
        ("12", 3, ["12"]),
    ],
)
def test_spoken_groups(number: str, size: int, groups: list[str]) -> None:
    assert spoken_groups(number, size) == groups
