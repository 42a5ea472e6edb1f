"""Customer identifiers typed by agents or customers: CPF/CNPJ (python-stdnum)."""

from __future__ import annotations

from stdnum.br import cnpj, cpf
from stdnum.exceptions import ValidationError


class InvalidDocument(ValueError):
    pass


def normalize_document(raw: str) -> str:
    """Digits of a valid CPF (11) or CNPJ (14); raises InvalidDocument with the reason."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(raw) > 40 or not digits:
        raise InvalidDocument("CPF/CNPJ must be 11 or 14 digits")
    module = {11: cpf, 14: cnpj}.get(len(digits))
    if module is None:
        raise InvalidDocument(f"CPF has 11 digits and CNPJ 14; got {len(digits)}")
    try:
        return module.validate(digits)
    except ValidationError:
        kind = "CPF" if module is cpf else "CNPJ"
        raise InvalidDocument(f"{kind} check digits do not match") from None
