"""A call from the fake Asterisk peer gets a committed number and hears it."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from sac_ivr.runner import RunningService
from tests.fakeasterisk.agi import HANGUP, FakeCallScript, fake_call


async def stored(running: RunningService, number: str) -> Protocol | None:
    async with running.core.sessionmaker() as session:
        return await session.scalar(select(Protocol).where(Protocol.number == number))


async def test_call_gets_a_committed_number_read_digit_by_digit(running: RunningService) -> None:
    result = await fake_call(
        "127.0.0.1", running.agi_port, args=("1732280000.5",), uniqueid="1732280000.7"
    )
    number = result.variables["SAC_PROTOCOL"]
    assert result.variables["SAC_RESULT"] == "OK"
    assert result.digits_between() == [number]
    assert result.played[0] == "sac/protocol-intro"
    assert "sac/pause" in result.played
    assert result.played[-1] == "sac/protocol-repeat-offer"
    protocol = await stored(running, number)
    assert protocol is not None
    assert protocol.status == "open"
    assert protocol.caller_number == "11987654321"
    assert protocol.caller_e164 == "+5511987654321"
    assert protocol.called_number == "08001234567"
    assert protocol.uniqueid == "1732280000.7"
    assert protocol.linkedid == "1732280000.5"  # from the dialplan's ${CHANNEL(linkedid)}
    assert protocol.channel == "PJSIP/trunk-00000001"
    assert protocol.issued_at.tzinfo is not None
    # The first command sets the number on the channel, right after the commit and
    # before any prompt (a crash from then on still lets the dialplan read it); the
    # intro comes next.
    assert result.commands[0] == f'SET VARIABLE SAC_PROTOCOL "{number}"'
    assert result.commands[1].startswith("STREAM FILE sac/protocol-intro")


async def test_pressing_1_repeats_at_most_twice(running: RunningService) -> None:
    script = FakeCallScript(wait_keys=["1", "1", "1"])
    result = await fake_call("127.0.0.1", running.agi_port, script=script)
    number = result.variables["SAC_PROTOCOL"]
    assert result.digits_between() == [number, number, number]
    # After the second repeat no repeat is offered any more.
    assert result.played.count("sac/protocol-repeat-offer") == 2
    assert sum(c.startswith("WAIT FOR DIGIT") for c in result.commands) == 2


async def test_pressing_1_during_the_digits_starts_over(running: RunningService) -> None:
    script = FakeCallScript(keys={3: "1"})  # intro, digit, digit, digit <- 1
    result = await fake_call("127.0.0.1", running.agi_port, script=script)
    number = result.variables["SAC_PROTOCOL"]
    assert result.played[:4] == [
        "sac/protocol-intro",
        f"digits/{number[0]}",
        f"digits/{number[1]}",
        f"digits/{number[2]}",
    ]
    assert result.played[4] == "sac/protocol-intro"
    assert result.digits_between() == [number]


async def test_hangup_mid_announcement_keeps_the_protocol(running: RunningService, caplog) -> None:
    for sighup in (False, True):
        script = FakeCallScript(keys={5: HANGUP}, sighup=sighup)
        result = await fake_call("127.0.0.1", running.agi_port, script=script)
        number = result.variables["SAC_PROTOCOL"]
        assert len(result.played) == 6
        assert result.closed_by_server
        # After the hangup the server sends nothing more (no drift, no 511 loop).
        assert result.commands[-1].startswith("STREAM FILE")
        protocol = await stored(running, number)
        assert protocol is not None and protocol.status == "open"
    assert "Traceback" not in caplog.text


async def test_result_ok_only_after_the_whole_reading(running: RunningService) -> None:
    """SAC_PROTOCOL comes before the intro, SAC_RESULT=OK only after the number was
    read to the end: a reading cut short (sac-ivr killed) leaves SAC_PROTOCOL without
    OK, and the dialplan then reads the number itself (extensions_sac.conf)."""
    whole = await fake_call("127.0.0.1", running.agi_port)
    sets = [c for c in whole.commands if c.startswith("SET VARIABLE")]
    assert sets[0].startswith("SET VARIABLE SAC_PROTOCOL ")
    assert sets[-1] == 'SET VARIABLE SAC_RESULT "OK"'
    last_audio = max(i for i, c in enumerate(whole.commands) if not c.startswith("SET"))
    assert whole.commands.index(sets[-1]) > last_audio  # after every prompt and wait
    assert whole.commands.index(sets[0]) == 0  # before the intro
    cut = await fake_call("127.0.0.1", running.agi_port, script=FakeCallScript(keys={4: HANGUP}))
    assert "SAC_PROTOCOL" in cut.variables and "SAC_RESULT" not in cut.variables


async def test_concurrent_calls_get_distinct_numbers(running: RunningService) -> None:
    results = await asyncio.gather(
        *(fake_call("127.0.0.1", running.agi_port, uniqueid=f"17000.{i}") for i in range(60))
    )
    numbers = [r.variables["SAC_PROTOCOL"] for r in results]
    assert len(set(numbers)) == 60
    for r in results:
        assert r.digits_between() == [r.variables["SAC_PROTOCOL"]]
    async with running.core.sessionmaker() as session:
        opened = (
            await session.scalars(select(ProtocolEvent).where(ProtocolEvent.kind == "opened"))
        ).all()
    assert len(opened) == 60


async def test_health_route_touches_only_its_variables(running: RunningService) -> None:
    result = await fake_call("127.0.0.1", running.agi_port, route="health")
    assert result.variables == {"SAC_HEALTH": "ok", "SAC_RESULT": "OK"}
    assert result.played == []


async def test_announce_route_reads_an_existing_number(running: RunningService) -> None:
    first = await fake_call("127.0.0.1", running.agi_port, args=("1700.9",))
    number = first.variables["SAC_PROTOCOL"]
    again = await fake_call(
        "127.0.0.1", running.agi_port, route="announce", args=(number, "1700.9")
    )
    assert again.digits_between() == [number]
    bad = await fake_call(
        "127.0.0.1", running.agi_port, route="announce", args=(number[:-1] + "x", "1700.9")
    )
    assert bad.variables["SAC_RESULT"] == "ERROR" and bad.played == []


async def test_subject_route_records_the_menu_choice(running: RunningService) -> None:
    first = await fake_call("127.0.0.1", running.agi_port, args=("1700.8",))
    number = first.variables["SAC_PROTOCOL"]
    done = await fake_call(
        "127.0.0.1", running.agi_port, route="subject", args=(number, "complaint-billing", "1700.8")
    )
    assert done.variables["SAC_RESULT"] == "OK"
    assert (await stored(running, number)).subject == "complaint"
    unknown = await fake_call(
        "127.0.0.1", running.agi_port, route="subject", args=(number, "nonsense", "1700.8")
    )
    assert unknown.variables["SAC_RESULT"] == "ERROR"


async def test_unknown_route_sets_error_and_closes(running: RunningService) -> None:
    result = await fake_call("127.0.0.1", running.agi_port, route="nope")
    assert result.variables == {"SAC_RESULT": "ERROR"}
    assert result.closed_by_server


async def test_called_number_is_the_dnid_or_a_dialled_extension_never_s(
    running: RunningService,
) -> None:
    cases = [("unknown", "s", None), ("unknown", "08001234567", "08001234567"),
             ("4004", "s", "4004")]  # fmt: skip
    for dnid, extension, expected in cases:
        call = await fake_call("127.0.0.1", running.agi_port, dnid=dnid, extension=extension)
        protocol = await stored(running, call.variables["SAC_PROTOCOL"])
        assert protocol.called_number == expected, (dnid, extension)
