"""The AMI wire format: bytes in, messages out; actions out as bytes. No I/O here.

Our own framing, not panoramisk's: its ``AMIProtocol.data_received`` and
``Message.from_line`` were where most of its AMI failures lived (PR #79: extra blank
lines and bare-LF line ends glued messages together; each read decoded on its own
with ``errors='ignore'`` dropped a UTF-8 character split between two reads; no
banner check; an unfinished message buffered without limit). The format is small
enough that owning it is simpler and safer than wrapping it, so nothing in this
package imports panoramisk for AMI (FastAGI still uses it, in ``fastagi.py``).

The rules, kept from what panoramisk did where it did not fail:

* the first line must be the banner ``Asterisk Call Manager/<version>``;
* line ends are CRLF or LF (a CRLF may be split between two reads); text is UTF-8, decoded
  incrementally (an undecodable byte becomes U+FFFD);
* a blank line ends a message; extra blank lines are ignored;
* a header is ``Name: value`` (``": "`` needed); other lines are skipped; values are
  stripped; a repeated header becomes a list of its values in order;
* a message without an ``Event`` or a ``Response`` header is dropped;
* ``Response: Follows`` (the ``Command`` output of Asterisk ≤ 13) keeps its last
  non-empty line as a body, not as a header;
* an unfinished message longer than :data:`MAX_MESSAGE_CHARS` is a
  :class:`WireError` (the link drops it instead of filling memory).
"""

from __future__ import annotations

import codecs
import itertools
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_BANNER_CHARS = 256
# An unfinished message larger than this drops the link.
MAX_MESSAGE_CHARS = 1024 * 1024
EOL = "\r\n"
_BODY_RESPONSES = ("Response: Follows", "Response: Fail")

AmiMessage = dict[str, Any]


class WireError(Exception):
    """The peer's bytes are not AMI (bad banner, message too long)."""


class FrameReader:
    """Turns the bytes read from one connection into messages (see the module docstring)."""

    def __init__(self) -> None:
        self.version: str | None = None  # from the banner, e.g. "9.0.0"
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._cr = False  # the last read ended between CR and LF
        self._buffer = ""  # text after the last complete message (or before the banner)

    def feed(self, data: bytes) -> list[AmiMessage]:
        """The messages completed by ``data``; raises :class:`WireError` on non-AMI input."""
        text = self._decoder.decode(data)
        if self._cr:
            text = "\r" + text
        self._cr = text.endswith("\r")
        if self._cr:
            text = text[:-1]
        self._buffer += text.replace("\r\n", "\n")
        if self.version is None and not self._take_banner():
            return []
        *complete, self._buffer = self._buffer.split("\n\n")
        if len(self._buffer) > MAX_MESSAGE_CHARS:
            raise WireError(f"a message of more than {MAX_MESSAGE_CHARS} characters")
        messages = (parse_message(chunk) for chunk in complete)
        return [message for message in messages if message is not None]

    def _take_banner(self) -> bool:
        line, sep, rest = self._buffer.partition("\n")
        if not sep:
            if len(self._buffer) > MAX_BANNER_CHARS:
                raise WireError(f"not an AMI server (banner {self._buffer[:40]!r})")
            return False
        if not line.startswith(BANNER_PREFIX):
            raise WireError(f"not an AMI server (banner {line[:40]!r})")
        self.version = line[len(BANNER_PREFIX) :].strip()
        self._buffer = rest
        return True


def parse_message(text: str) -> AmiMessage | None:
    """One message's text (lines joined by LF or CRLF) as headers; None if not a message."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    if lines[0].startswith(_BODY_RESPONSES):
        while lines and not lines[-1].strip():
            lines.pop()
        lines = lines[:-1] if len(lines) > 1 else lines
    headers: AmiMessage = {}
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep:
            continue
        value = value.strip()
        if name not in headers:
            headers[name] = value
        elif isinstance(headers[name], list):
            headers[name].append(value)
        else:
            headers[name] = [headers[name], value]
    if "Event" not in headers and "Response" not in headers:
        return None
    return headers


def first(value: Any) -> str:
    """A header's value as one string (the first of a repeated header)."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def check_fields(action: str, fields: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """The fields as text (booleans as true/false, sequences as repeated headers).

    A line break (or a colon in a name) would let a value inject headers or a whole
    action: refused with ``ValueError`` before anything is sent.
    """
    checked: dict[str, str | list[str]] = {}
    for name in (action, *fields):
        if "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"AMI field {name!r} contains a line break or colon")
    for key, value in fields.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        texts = [
            ("true" if item else "false") if isinstance(item, bool) else str(item) for item in items
        ]
        for text in texts:
            if "\r" in text or "\n" in text:
                raise ValueError(f"AMI field {key!r} contains a line break or colon")
        checked[key] = texts if isinstance(value, (list, tuple)) else texts[0]
    return checked


def encode_action(action: str, action_id: str, fields: Mapping[str, Any]) -> bytes:
    """``Action``, ``ActionID``, then the fields (checked by :func:`check_fields`).

    Raises ``ValueError`` for a line break and ``UnicodeEncodeError`` for text that is
    not encodable (e.g. a lone surrogate from an undecodable environment byte).
    """
    lines = [f"Action: {action}", f"ActionID: {action_id}"]
    for key, value in check_fields(action, fields).items():
        if key.lower() in ("action", "actionid"):
            continue
        values: Iterable[str] = value if isinstance(value, list) else [value]
        lines.extend(f"{key}: {item}" for item in values)
    return (EOL.join(lines) + EOL + EOL).encode("utf-8")


class ActionIds:
    """ActionIDs unique to this process: ``sac-<random>-<n>``."""

    def __init__(self) -> None:
        self._prefix = f"sac-{uuid.uuid4().hex[:12]}-"
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter)}"
