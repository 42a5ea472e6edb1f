"""The public lookup of a protocol (``GET /api/v1/protocols/{number}`` without a token).

- The number alone shows the status (with its pt-BR label) and the dates, to the day
  in the service's time zone: what a customer needs, nothing that helps an
  enumerator.
- The subject and the notes written for the customer need a second factor:
  ``?verify=NNNN``, the last 4 digits of the customer's phone (the calling number or
  the one an agent recorded) or of their CPF/CNPJ; or a signed link
  (``?expires=…&signature=…``, see ``signed_query``).
- Limits per client address (``auth.clients``): ``public_lookups_per_hour`` lookups
  (bursts of a tenth of it), then 429 with Retry-After. Wrong second factors are
  limited much more tightly, per address and per number, per day: 4 digits are
  10,000 guesses, and a number takes ``public_verify_failures_per_number`` of them a
  day. A signed link cannot be guessed, so it is not held back by a number's lock.
- Every request counts one outcome (``audit.services.count_lookup``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from sac_ivr.audit.services import count_lookup
from sac_ivr.auth.clients import client_address, limit_key
from sac_ivr.auth.keys import key, link_signature, signature_ok
from sac_ivr.auth.ratelimit import RateLimiter, too_many_requests
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import ApiError, bad_request, not_found
from sac_ivr.lifecycle.services import lifecycle_of
from sac_ivr.protocols import schemas, services
from sac_ivr.protocols.numbering import InvalidProtocolNumber
from sac_ivr.protocols.tables import Protocol

if TYPE_CHECKING:
    from sac_ivr.core import Core

EXTRA_KEY = "public_lookup"
HOUR = 3600.0
DAY = 86400.0
VERIFY_DIGITS = 4
LINK_DAYS = 30
SIGNATURE_MAX = 64
_DIGITS = re.compile(r"[0-9]+")


@dataclass
class PublicLimits:
    lookups: RateLimiter  # per client
    failures_by_client: RateLimiter
    failures_by_number: RateLimiter


def limits_of(core: Core) -> PublicLimits:
    limits = core.extras.get(EXTRA_KEY)
    if limits is None:
        s = core.settings
        per_hour = s.public_lookups_per_hour
        # A bucket of a tenth of the hourly figure, refilled at the hourly rate: a
        # client checks at most per_hour * 1.1 numbers in its first hour.
        limits = core.extras[EXTRA_KEY] = PublicLimits(
            lookups=RateLimiter(max(1, per_hour // 10), HOUR / 10),
            failures_by_client=RateLimiter(s.public_verify_failures_per_client, DAY),
            failures_by_number=RateLimiter(s.public_verify_failures_per_number, DAY),
        )
    return limits


@dataclass(frozen=True)
class Factor:
    kind: str  # "digits" or "link"
    digits: str = ""
    expires: int = 0
    signature: str = ""


def parse_factor(request: web.Request) -> Factor | None:
    q = request.query
    verify = q.get("verify")
    expires = q.get("expires")
    signature = q.get("signature")
    if verify is not None and (expires is not None or signature is not None):
        raise bad_request("give verify or a signed link (expires, signature), not both")
    if verify is not None:
        if len(verify) != VERIFY_DIGITS or not _DIGITS.fullmatch(verify):
            raise bad_request(
                f"verify is the last {VERIFY_DIGITS} digits of the customer's phone or CPF/CNPJ",
                field="verify",
            )
        return Factor("digits", digits=verify)
    if expires is None and signature is None:
        return None
    if not expires or len(expires) > 12 or not _DIGITS.fullmatch(expires):
        raise bad_request("expires must be a Unix time", field="expires")
    if (
        not signature
        or len(signature) > SIGNATURE_MAX
        or not re.fullmatch(r"[A-Za-z0-9_-]+", signature)
    ):
        raise bad_request("signature is missing or malformed", field="signature")
    return Factor("link", expires=int(expires), signature=signature)


def _last_digits(value: str | None) -> str | None:
    digits = "".join(c for c in value or "" if c.isascii() and c.isdigit())
    return digits[-VERIFY_DIGITS:] if len(digits) >= VERIFY_DIGITS else None


def digits_match(protocol: Protocol, digits: str) -> bool:
    """The last digits of a phone the protocol knows, or of its CPF/CNPJ."""
    candidates = {
        _last_digits(v)
        for v in (
            protocol.caller_e164 or protocol.caller_number,
            protocol.customer_phone,
            protocol.customer_document,
        )
    }
    return digits in candidates


async def signed_query(core: Core, number: str, days: int = LINK_DAYS) -> str:
    """``expires=…&signature=…`` opening ``number``'s subject and notes for ``days``
    (for a link sent to the customer: append it to the lookup URL)."""
    expires = int(time.time() + days * DAY)
    signature = link_signature(await key(core, "lookup_link"), number, expires)
    return f"expires={expires}&signature={signature}"


async def lookup(request: web.Request, number_in_path: str) -> web.Response:
    """The whole public lookup (see the module docstring)."""
    svc = core_of(request)
    limits = limits_of(svc)
    client = limit_key(client_address(request, svc.settings.trusted_proxies))
    wait = limits.lookups.take(client)
    if wait:
        count_lookup(svc, "limited")
        return too_many_requests(
            "rate_limited", "too many lookups from this address: try again later", wait
        )
    try:
        number = svc.protocol_format.validate(number_in_path)
        factor = parse_factor(request)
    except InvalidProtocolNumber as exc:
        count_lookup(svc, "invalid")
        raise bad_request(str(exc), code="invalid_protocol_number") from None
    except ApiError:
        count_lookup(svc, "invalid")
        raise
    if factor is not None:
        waits = [limits.failures_by_client.wait(client)]
        if factor.kind == "digits":
            waits.append(limits.failures_by_number.wait(number))
        if max(waits):
            count_lookup(svc, "limited")
            return too_many_requests(
                "verification_locked",
                "too many wrong verifications: try again later, or call the SAC",
                max(waits),
            )
    async with svc.reader() as session:
        protocol = await services.get_by_number(session, number, with_events=factor is not None)
    if protocol is None:
        count_lookup(svc, "not_found")
        raise not_found(f"protocol {number} not found")
    tz = svc.settings.tz
    if factor is None:
        count_lookup(svc, "found")
        return web.json_response(schemas.public_view(protocol, tz))
    if factor.kind == "digits":
        ok = digits_match(protocol, factor.digits)
    else:
        ok = factor.expires >= time.time() and signature_ok(
            await key(svc, "lookup_link"), number, factor.expires, factor.signature
        )
    if not ok:
        count_lookup(svc, "verify_failed")
        limits.failures_by_client.take(client)
        if factor.kind == "digits":
            limits.failures_by_number.take(number)
        raise ApiError(
            403,
            "verification_failed",
            "the digits do not match"
            if factor.kind == "digits"
            else "the link is not valid or expired",
        )
    count_lookup(svc, "verified")
    label = lifecycle_of(svc).subject_label(protocol.subject)
    return web.json_response(schemas.verified_view(protocol, tz, label))
