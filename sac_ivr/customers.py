"""Customer identifiers typed by agents or customers: CPF/CNPJ (python-stdnum).

CNPJs may be alphanumeric (Receita Federal, from July 2026): 12 characters of
digits and capital letters, then 2 check digits. The panel's
``static/js/documents.js`` applies the same rules; a browser test keeps them equal.
"""

from __future__ import annotations

import re

from stdnum.br import cnpj, cpf
from stdnum.exceptions import ValidationError

_PUNCTUATION = re.compile(r"[\s./\-]")


class InvalidDocument(ValueError):
    pass


def normalize_document(raw: str) -> str:
    """A valid CPF (11 digits) or CNPJ (14 characters, letters allowed before the two
    check digits), without punctuation, letters in capitals. Raises InvalidDocument
    with the reason."""
    text = _PUNCTUATION.sub("", raw).upper()
    if len(raw) > 40 or not text:
        raise InvalidDocument("CPF must be 11 digits and CNPJ 14 characters")
    if not re.fullmatch(r"[0-9A-Z]+", text):
        raise InvalidDocument("CPF/CNPJ has digits (and, in a CNPJ, capital letters) only")
    if len(text) == 11 and text.isdigit():
        validate, kind = cpf.validate, "CPF"
    elif len(text) == 14 and text[12:].isdigit():
        validate, kind = cnpj.validate, "CNPJ"
    else:
        raise InvalidDocument(f"CPF has 11 digits and CNPJ 14 characters; got {len(text)}")
    try:
        return validate(text)
    except ValidationError:
        raise InvalidDocument(f"{kind} check digits do not match") from None
