"""Issue #8 on the call path, with the fake Asterisk peer on real sockets, on SQLite
and PostgreSQL:

1. one bad row among 50 simultaneous calls costs no other caller its number: what
   Asterisk sends is brought to the columns' widths and to what both databases
   store (no NUL, no control characters), and a batch the database refuses anyway
   is issued again call by call, so only the row that really fails gets an error;
5. the routes that change or read a protocol (subject, announce) only touch the
   protocol issued to the same call (its linkedid);
6. the number is on the channel before the first prompt, and the dialplan's retry
   after a crash between the commit and SET VARIABLE gets the same number back.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, text

from sac_ivr.core import Core
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.issuer import CallInfo, ProtocolIssueError
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from sac_ivr.runner import RunningService, start_service
from tests.conftest import make_settings
from tests.fakeasterisk.agi import agi_headers, fake_call

CALLS = 50
# the columns Asterisk fills, and their width in the model
CALL_COLUMNS = ("caller_number", "caller_name", "called_number", "uniqueid", "linkedid", "channel")
WIDTHS = {name: Protocol.__table__.c[name].type.length for name in CALL_COLUMNS}


def _mobile(i: int) -> str:
    return f"119876543{i:02d}"  # 50 distinct valid Brazilian mobiles


async def raw_call(port: int, headers: bytes, timeout: float = 10.0) -> dict[str, str]:
    """A FastAGI session with a header block given as bytes (bad UTF-8 and all):
    answers every command as a call that listens to the end; returns the variables
    set."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    variables: dict[str, str] = {}
    try:
        writer.write(headers)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while line := await reader.readline():
                command = line.decode().rstrip("\n")
                if command.startswith("SET VARIABLE "):
                    name, _, value = command.removeprefix("SET VARIABLE ").partition(" ")
                    variables[name] = value.strip('"')
                writer.write(b"200 result=0 endpos=800\n")
                await writer.drain()
    finally:
        writer.close()
    return variables


def _headers_with(field: str, value: bytes, **kwargs: str) -> bytes:
    """agi_headers() with one header's value replaced by raw bytes."""
    marker = "XMARKERX"
    block = agi_headers("protocol", **{**kwargs, field: marker})
    return block.replace(marker.encode(), value)


async def _rows(core: Core) -> list[Protocol]:
    async with core.sessionmaker() as session:
        return list((await session.scalars(select(Protocol).order_by(Protocol.id))).all())


def _storable_everywhere(row: Protocol) -> list[str]:
    """What in this row PostgreSQL would refuse or SQLite keeps past the model."""
    problems = []
    for column in CALL_COLUMNS:
        value = getattr(row, column)
        if value is None:
            continue
        if len(value) > WIDTHS[column]:
            problems.append(f"{column}: {len(value)} > {WIDTHS[column]} characters")
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
            problems.append(f"{column}: control or surrogate characters {value!r}")
    return problems


# -- 1. one bad row among 50 -------------------------------------------------------------

LONG_NAME = "Maria " + "x" * 194  # 200 characters
# (header, raw value Asterisk may send, the column it lands in, what is stored)
BAD_CALLS = {
    "name-200-chars": (
        "calleridname",
        LONG_NAME.encode(),
        "caller_name",
        LONG_NAME[:128],
    ),
    "caller-number-70": ("callerid", b"1" * 70, "caller_number", "1" * 64),
    "dnid-70": ("dnid", b"0800" + b"2" * 66, "called_number", "0800" + "2" * 60),
    "uniqueid-80": ("uniqueid", b"1732280000." + b"9" * 69, "uniqueid", "1732280000." + "9" * 53),
    "channel-140": ("channel", b"PJSIP/" + b"t" * 134, "channel", "PJSIP/" + "t" * 122),
    # NUL (PostgreSQL: "invalid byte sequence"), escape sequences, bell, DEL, a tab,
    # and bytes that are not UTF-8 (decoded with 'replace' by the FastAGI server)
    "nul-controls-bad-utf8": (
        "calleridname",
        b"Jo\xc3\xa3o\x00 \x1b[31mda\tSilva\x07\x7f \xff\xfe",
        "caller_name",
        "João [31mda Silva \ufffd\ufffd",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_CALLS))
async def test_one_bad_call_among_50_costs_nobody_their_number(
    running: RunningService, kind: str
) -> None:
    header, raw, column, expected = BAD_CALLS[kind]
    port = running.agi_port
    bad_index = 17
    headers = [
        agi_headers("protocol", callerid=_mobile(i), uniqueid=f"1700.{i}") for i in range(CALLS)
    ]
    headers[bad_index] = _headers_with(header, raw, callerid=_mobile(0), uniqueid="1700.x")
    results = await asyncio.gather(*(raw_call(port, h) for h in headers))
    assert [r.get("SAC_RESULT") for r in results] == ["OK"] * CALLS, results
    numbers = [r["SAC_PROTOCOL"] for r in results]
    assert len(set(numbers)) == CALLS
    rows = await _rows(running.core)
    assert sorted(r.number for r in rows) == sorted(numbers)
    bad = next(r for r in rows if r.number == numbers[bad_index])
    assert getattr(bad, column) == expected
    # the same rule on both databases: nothing past the model's widths, no controls
    assert [p for r in rows for p in _storable_everywhere(r)] == []


# -- 1. a row that fails for another reason fails only itself ---------------------------

REFUSED_NAME = "refused-by-trigger"

SQLITE_TRIGGER = f"""
CREATE TRIGGER test_refuse_row BEFORE INSERT ON protocols
WHEN NEW.caller_name = '{REFUSED_NAME}'
BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END
"""
PG_TRIGGER = (
    f"""
CREATE FUNCTION test_refuse_row() RETURNS trigger AS $$
BEGIN
  IF NEW.caller_name = '{REFUSED_NAME}' THEN
    RAISE EXCEPTION 'refused by the test trigger';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql
""",
    """
CREATE TRIGGER test_refuse_row BEFORE INSERT ON protocols
FOR EACH ROW EXECUTE FUNCTION test_refuse_row()
""",
)


@dataclass
class Refusing:
    running: RunningService


@pytest.fixture
async def refusing(db_url: str) -> AsyncIterator[Refusing]:
    """sac-ivr with opening SMS on (a hook that writes in the issuing transaction) on
    a database whose trigger refuses one caller name."""
    settings = make_settings(
        db_url,
        sms_provider="webhook",
        sms_url="http://127.0.0.1:9/sms",
        outbox_worker=False,
        log_level="INFO",
        # The outage reserve (PostgreSQL) takes blocks of the sequence ahead, at times
        # of its own: off, so that "a refused row leaves no gap" stays visible.
        protocol_reserve_block=0,
    )
    running = await start_service(settings, migrate=False)
    async with running.core.engine.begin() as connection:
        statements = (SQLITE_TRIGGER,) if db_url.startswith("sqlite") else PG_TRIGGER
        for statement in statements:
            await connection.execute(text(statement))
    yield Refusing(running)
    await running.stop(drain_seconds=1.0)


async def test_a_row_the_database_refuses_fails_only_its_own_call(
    refusing: Refusing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    core = refusing.running.core
    issuer = core.issuer
    refused_index = 23
    # All queued before the issuer's worker runs: ONE batch of 50 (see the log below).
    outcomes = await asyncio.gather(
        *(
            issuer.issue(
                CallInfo(
                    caller_number=_mobile(i),
                    caller_name=REFUSED_NAME if i == refused_index else "Maria Silva",
                    uniqueid=f"1701.{i}",
                    linkedid=f"1701.{i}",
                    channel=f"PJSIP/trunk-{i:08x}",
                )
            )
            for i in range(CALLS)
        ),
        return_exceptions=True,
    )
    assert f"protocol batch of {CALLS} call(s) failed" in caplog.text
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [refused_index], outcomes
    assert isinstance(outcomes[refused_index], ProtocolIssueError)
    issued = [o for o in outcomes if not isinstance(o, BaseException)]
    numbers = sorted(p.number for p in issued)
    # unique, committed, and no gap: the refused attempts' counter bumps rolled back
    assert sorted(int(n[8:14]) for n in numbers) == list(range(1, CALLS))
    assert sorted(r.number for r in await _rows(core)) == numbers
    async with core.sessionmaker() as session:
        opened = (
            await session.scalars(
                select(Protocol.number)
                .join(ProtocolEvent, ProtocolEvent.protocol_id == Protocol.id)
                .where(ProtocolEvent.kind == "opened")
            )
        ).all()
        sms = (
            await session.scalars(
                select(Protocol.number)
                .join(OutboxMessage, OutboxMessage.protocol_id == Protocol.id)
                .where(OutboxMessage.kind == "opened", OutboxMessage.channel == "sms")
            )
        ).all()
    # the hooks ran in each row's own transaction: one opening event and SMS per number
    assert sorted(opened) == numbers
    assert sorted(sms) == numbers
    # no personal data in the log lines about the failure (the database's message
    # with SQLAlchemy's parameters would quote caller numbers and names)
    assert REFUSED_NAME not in caplog.text and "Maria Silva" not in caplog.text
    assert not any(_mobile(i) in caplog.text for i in range(CALLS))


async def test_only_the_refused_caller_hears_no_number(refusing: Refusing) -> None:
    port = refusing.running.agi_port
    refused_index = 5
    results = await asyncio.gather(
        *(
            fake_call(
                "127.0.0.1",
                port,
                uniqueid=f"1702.{i}",
                callerid=_mobile(i),
                calleridname=REFUSED_NAME if i == refused_index else "Maria Silva",
            )
            for i in range(CALLS)
        )
    )
    verdicts = [r.variables.get("SAC_RESULT") for r in results]
    assert verdicts == ["ERROR" if i == refused_index else "OK" for i in range(CALLS)]
    assert results[refused_index].played == []  # the dialplan plays the fallback
    assert "SAC_PROTOCOL" not in results[refused_index].variables
    numbers = [r.variables["SAC_PROTOCOL"] for i, r in enumerate(results) if i != refused_index]
    assert len(set(numbers)) == CALLS - 1
    for r in results:
        if r.variables.get("SAC_RESULT") == "OK":
            assert r.digits_between() == [r.variables["SAC_PROTOCOL"]]


async def test_database_gone_fails_the_batch_at_once_without_row_retries(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that cannot be opened fails every call of the batch with one error
    line naming the error's kind and code (never a database's message, which may quote
    values): retrying 50 rows one by one against it would only make callers wait."""
    from sac_ivr.db.engine import create_engine
    from sac_ivr.protocols.issuer import ProtocolIssuer
    from sac_ivr.protocols.numbering import DateSequenceCheck

    caplog.set_level(logging.INFO)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}")  # a directory
    issuer = ProtocolIssuer(engine, DateSequenceCheck(), make_settings("sqlite://").tz)
    try:
        outcomes = await asyncio.gather(
            *(issuer.issue(CallInfo(caller_number=_mobile(i))) for i in range(CALLS)),
            return_exceptions=True,
        )
    finally:
        await issuer.close()
        await engine.dispose()
    assert all(isinstance(o, ProtocolIssueError) for o in outcomes)
    assert "one by one" not in caplog.text
    failures = [r for r in caplog.records if "protocol issue failed" in r.getMessage()]
    assert len(failures) == 1 and f"for {CALLS} call(s)" in failures[0].getMessage()
    assert failures[0].getMessage().endswith(": OperationalError OperationalError SQLITE_CANTOPEN")
    assert all(str(o) == "OperationalError OperationalError SQLITE_CANTOPEN" for o in outcomes)


# -- 5. a route only touches the protocol of its own call --------------------------------


async def _count(core: Core, model: type, *where: object) -> int:
    async with core.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def test_subject_and_announce_refuse_a_protocol_of_another_call(
    running: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    port = running.agi_port
    core = running.core
    victim = await fake_call("127.0.0.1", port, args=("1703.1",), uniqueid="1703.1")
    attacker = await fake_call("127.0.0.1", port, args=("1703.2",), uniqueid="1703.2")
    number = victim.variables["SAC_PROTOCOL"]
    (row,) = [r for r in await _rows(core) if r.number == number]
    before = await _count(core, ProtocolEvent, ProtocolEvent.protocol_id == row.id)

    # another call's linkedid, no linkedid, the number alone (the old dialplan's form)
    for args in (
        (number, "cancellation", "1703.2"),
        (number, "cancellation", ""),
        (number, "cancellation"),
        (number, "complaint-billing", "1703.9"),
    ):
        refused = await fake_call("127.0.0.1", port, route="subject", args=args, uniqueid="1703.2")
        assert refused.variables == {"SAC_RESULT": "ERROR"}, args
    heard = await fake_call(
        "127.0.0.1", port, route="announce", args=(number, "1703.2"), uniqueid="1703.2"
    )
    assert heard.variables == {"SAC_RESULT": "ERROR"} and heard.played == []

    # nothing changed on the victim's protocol: no subject, no cancellation, no event
    (row,) = [r for r in await _rows(core) if r.number == number]
    assert (row.status, row.subject) == ("open", None)
    assert await _count(core, ProtocolEvent, ProtocolEvent.protocol_id == row.id) == before
    assert await _count(core, OutboxMessage, OutboxMessage.protocol_id == row.id) == 0
    assert "was not issued to this call" in caplog.text
    assert "Maria Silva" not in caplog.text and "11987654321" not in caplog.text

    # the call that opened it may: same linkedid
    own = await fake_call(
        "127.0.0.1", port, route="subject", args=(number, "cancellation", "1703.1")
    )
    assert own.variables == {"SAC_RESULT": "OK"}
    (row,) = [r for r in await _rows(core) if r.number == number]
    assert row.subject == "cancellation"
    again = await fake_call("127.0.0.1", port, route="announce", args=(number, "1703.1"))
    assert again.variables["SAC_RESULT"] == "OK" and again.digits_between() == [number]
    assert attacker.variables["SAC_PROTOCOL"] != number


# -- 6. the number on the channel first, and the dialplan's retry ------------------------


async def _drop_at_first_command(port: int, headers: bytes) -> str:
    """Asterisk's side of a call whose sac-ivr dies right after the commit: the
    connection closes as the first command arrives (nothing answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(headers)
        await writer.drain()
        async with asyncio.timeout(10):
            first = (await reader.readline()).decode().rstrip("\n")
    finally:
        writer.transport.abort()
    return first


async def test_retry_after_a_crash_before_set_variable_reads_the_same_number(
    running: RunningService,
) -> None:
    port = running.agi_port
    core = running.core
    call = {"uniqueid": "1704.7", "channel": "PJSIP/trunk-0000002a", "callerid": _mobile(1)}
    first = await _drop_at_first_command(
        port, agi_headers("protocol", port=port, args=("1704.7",), **call)
    )
    # the first command after the commit puts the number on the channel
    assert first.startswith("SET VARIABLE SAC_PROTOCOL "), first
    (row,) = await _rows(core)
    assert first == f'SET VARIABLE SAC_PROTOCOL "{row.number}"'

    retry = await fake_call("127.0.0.1", port, args=("1704.7", "retry"), **call)
    assert retry.variables["SAC_PROTOCOL"] == row.number
    assert retry.variables["SAC_RESULT"] == "OK"
    assert retry.digits_between() == [row.number]
    assert [r.number for r in await _rows(core)] == [row.number]  # exactly one row

    # a retry of a call whose first attempt stored nothing gets a new number; the same
    # linkedid on another leg (another uniqueid and channel) is another call's number
    fresh = await fake_call("127.0.0.1", port, args=("1704.8", "retry"), uniqueid="1704.8")
    other_leg = await fake_call(
        "127.0.0.1",
        port,
        args=("1704.7", "retry"),
        uniqueid="1704.9",
        channel="PJSIP/trunk-0000002b",
    )
    numbers = {fresh.variables["SAC_PROTOCOL"], other_leg.variables["SAC_PROTOCOL"]}
    assert len(numbers) == 2 and row.number not in numbers
    assert len(await _rows(core)) == 3
