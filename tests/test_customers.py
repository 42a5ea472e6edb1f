"""CPF/CNPJ and phone normalisation used by the API and the panel."""

from __future__ import annotations

import pytest

from sac_ivr.customers import InvalidDocument, normalize_document
from sac_ivr.phones import mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("529.982.247-25", "52998224725"),
        (" 52998224725 ", "52998224725"),
        ("11.222.333/0001-81", "11222333000181"),
        ("12.ABC.345/01DE-35", "12ABC34501DE35"),  # alphanumeric CNPJ
        ("12.abc.345/01de-35", "12ABC34501DE35"),
    ],
)
def test_valid_documents_are_normalised(raw: str, expected: str) -> None:
    assert normalize_document(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("529.982.247-24", "CPF check digits"),
        ("11.222.333/0001-80", "CNPJ check digits"),
        ("12.ABC.345/01DE-36", "CNPJ check digits"),
        ("5299822472A", "got 11"),
        ("123", "got 3"),
        ("529;982", "digits"),
        ("", "11 digits"),
        ("9" * 50, "11 digits"),
    ],
)
def test_invalid_documents_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidDocument, match=reason):
        normalize_document(raw)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("11987654321", "+5511987654321"),
        ("011987654321", "+5511987654321"),
        ("0 21 11 98765-4321", "+5511987654321"),  # carrier selection code 21
        ("5511987654321", "+5511987654321"),
        ("+55 (11) 3333-4444", "+551133334444"),
        ("anonymous", None),
        ("", None),
        (None, None),
        ("987654321", None),  # no area code: not guessable
    ],
)
def test_brazilian_caller_ids_normalise_to_e164(raw: str | None, e164: str | None) -> None:
    assert normalize_phone(raw) == e164


def test_masked_phone_keeps_only_the_last_four_digits() -> None:
    assert mask_phone("+5511987654321") == "*********4321"
    assert mask_phone(None) is None
