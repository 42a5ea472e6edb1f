"""The AMI client (sac_ivr/asterisk/: wire.py, link.py, ami.py, our own in place of
panoramisk's Manager, AMIProtocol and Action) against a fake Asterisk Manager on a
real socket: each failure panoramisk 1.4 has (see the project notes) is shown not to
happen here, plus reconnects, reconciliation callbacks and secrecy; and the wire
format on its own.

One test (at least) per contained failure, each asserting what stock panoramisk
gets wrong:

- #6 loop: test_the_client_can_be_started_again_in_another_loop
- #4 actions while down, no deadline: test_action_while_the_link_is_down_...,
  test_action_without_an_answer_times_out
- re-send after a reconnect: test_actions_waiting_when_the_link_drops_...
- #5 half-open link: test_half_open_link_is_detected_by_the_ping_and_rebuilt
- fixed reconnect delay: test_reconnect_backoff_doubles_...
- #90 Originate/Async: test_originate_async_answers_...
- PR #79 extra blank lines, bare LF: test_blank_lines_garbage_...
- a character split between two reads: test_a_character_split_between_two_reads_...
- an exception while handling a message: test_a_message_panoramisk_cannot_handle_...,
  test_a_failing_subscriber_...
- unbounded buffer: test_a_message_that_never_ends_...
- secret in logs: test_a_login_that_cannot_be_written_...,
  test_an_action_lost_with_the_link_...
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sac_ivr.asterisk.ami import (
    MAX_MESSAGE_CHARS,
    AmiActionError,
    AmiClient,
    AmiNotConnected,
    AmiTimeout,
)
from sac_ivr.asterisk.wire import FrameReader, WireError, encode_action
from tests.fakeasterisk.ami import FakeAmi, load_trace, trace_bytes, wait_until

SECRET = "Sup3r-S3cret-AMI"


def client_for(fake: FakeAmi, **overrides: Any) -> AmiClient:
    options: dict[str, Any] = {
        "action_timeout": 1.0,
        "ping_interval": 30.0,
        "backoff_min": 0.01,
        "backoff_max": 0.05,
    }
    options.update(overrides)
    secret = options.pop("secret", fake.secret)
    return AmiClient("127.0.0.1", fake.port, fake.username, secret, **options)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = await FakeAmi(secret=SECRET).start()
    yield server
    await server.close()


@pytest.fixture
async def client(fake: FakeAmi) -> AsyncIterator[AmiClient]:
    ami = client_for(fake)
    await ami.start()
    assert await ami.wait_connected(5)
    yield ami
    await ami.close()


# -- panoramisk #6: Manager(loop=...) -------------------------------------------------
def test_client_is_built_without_a_loop_and_started_inside_one() -> None:
    # No running loop here: building the client must not bind to one.
    ami = AmiClient("127.0.0.1", 1, "sac-ivr", SECRET, backoff_min=0.01, backoff_max=0.02)

    async def use() -> str:
        fake = await FakeAmi(secret=SECRET).start()
        ami.port = fake.port
        await ami.start()
        try:
            assert await ami.wait_connected(5)
            await ami.ping()
            return ami.version or ""
        finally:
            await ami.close()
            await fake.close()

    assert asyncio.run(use()) == "11.0.0"


def test_the_client_can_be_started_again_in_another_loop() -> None:
    # Stock Manager keeps the loop of its first connect(): in a second loop it fails
    # with "Event loop is closed". Ours builds its Manager inside start().
    ami = AmiClient("127.0.0.1", 1, "sac-ivr", SECRET, backoff_min=0.01, backoff_max=0.02)

    async def use() -> int:
        fake = await FakeAmi(secret=SECRET).start()
        ami.port = fake.port
        await ami.start()
        try:
            assert await ami.wait_connected(5)
            await ami.ping()
            return fake.logins
        finally:
            await ami.close()
            await fake.close()

    assert asyncio.run(use()) == 1
    assert asyncio.run(use()) == 1
    assert ami.connections == 2


# -- panoramisk #4: actions that wait for ever -----------------------------------------
async def test_action_while_the_link_is_down_fails_fast_with_a_clear_error(
    fake: FakeAmi,
) -> None:
    await fake.stop_listening()
    ami = client_for(fake, action_timeout=300.0)
    await ami.start()
    try:
        with pytest.raises(AmiNotConnected, match="is down; Originate was not sent"):
            await ami.originate({"Channel": "Local/s@sac-test", "Application": "Wait"})
    finally:
        await ami.close()
    assert fake.actions == []


async def test_action_without_an_answer_times_out(fake: FakeAmi, client: AmiClient) -> None:
    fake.go_silent()
    with pytest.raises(AmiTimeout, match="no answer to AMI Ping within"):
        await client.send_action("Ping", timeout=0.2)


async def test_actions_waiting_when_the_link_drops_fail_and_are_never_resent(
    fake: FakeAmi, client: AmiClient
) -> None:
    fake.go_silent()
    pending = asyncio.ensure_future(
        client.originate({"Channel": "Local/s@sac-test", "Application": "Wait"})
    )
    await fake.wait_action("Originate")
    await fake.drop()
    with pytest.raises(AmiNotConnected):
        await pending
    await fake.wait_logins(2)
    await client.ping()  # the new link works...
    assert len(fake.actions_named("Originate")) == 1  # ...and the call was not placed twice


# -- panoramisk #5: a dead link goes unnoticed -----------------------------------------
async def test_half_open_link_is_detected_by_the_ping_and_rebuilt(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    ami = client_for(fake, ping_interval=0.05, action_timeout=0.2)
    events: list[dict[str, Any]] = []
    ami.subscribe(events.append)
    await ami.start()
    try:
        assert await ami.wait_connected(5)
        first_link_pings = len(fake.actions_named("Ping"))
        fake.go_silent()  # the socket stays open; nothing comes back
        await fake.wait_logins(2)
        assert await ami.wait_connected(5)
        assert len(fake.actions_named("Ping")) > first_link_pings
        assert ami.link_lost_at is not None
        assert "no answer to Ping" in caplog.text
        await fake.push({"Event": "PeerStatus", "Peer": "PJSIP/agent1"})
        await ami.ping()
        assert events[-1]["Event"] == "PeerStatus"  # the new link delivers events
    finally:
        await ami.close()


# -- reconnects ------------------------------------------------------------------------
async def test_reconnect_backoff_doubles_up_to_its_cap_and_restarts_after_a_login(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sac_ivr.asterisk")
    ami = client_for(fake, backoff_min=0.01, backoff_max=0.04)
    await ami.start()
    try:
        assert await ami.wait_connected(5)
        port = fake.port
        await fake.stop_listening()  # Asterisk down: every attempt is refused
        await wait_until(lambda: len(delays(caplog)) >= 5)
        assert delays(caplog)[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]
        await fake.start(port)
        await fake.wait_logins(2)
        caplog.clear()
        await fake.drop()
        await wait_until(lambda: len(delays(caplog)) >= 1)
        assert delays(caplog)[0] == 0.01  # a link that worked starts the backoff over
    finally:
        await ami.close()


def delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    found = (re.search(r"reconnecting to .* in ([0-9.]+)s", r.getMessage()) for r in caplog.records)
    return [float(m.group(1)) for m in found if m]


async def test_every_login_runs_the_connect_callbacks_in_order(fake: FakeAmi) -> None:
    ami = client_for(fake)
    calls: list[tuple[str, bool]] = []

    async def reconcile(client: AmiClient) -> None:
        response = await client.send_action("CoreShowChannels")  # actions work in here
        assert response.ok
        calls.append(("reconcile", client.link_lost_at is not None))

    async def seed(client: AmiClient) -> None:
        calls.append(("seed", client.link_lost_at is not None))

    ami.add_connect_callback(reconcile)
    ami.add_connect_callback(seed)
    await ami.start()
    try:
        await wait_until(lambda: len(calls) == 2)
        await fake.drop()
        await wait_until(lambda: len(calls) == 4)
        await fake.drop()
        await wait_until(lambda: len(calls) == 6)
    finally:
        await ami.close()
    assert calls == [
        ("reconcile", False),
        ("seed", False),
        ("reconcile", True),
        ("seed", True),
        ("reconcile", True),
        ("seed", True),
    ]
    assert fake.logins == 3


async def test_link_callbacks_report_up_and_down(fake: FakeAmi) -> None:
    ami = client_for(fake)
    states: list[bool] = []
    ami.add_link_callback(states.append)
    await ami.start()
    try:
        assert await ami.wait_connected(5)
        await fake.drop()
        await fake.wait_logins(2)
        await wait_until(lambda: len(states) == 3)
    finally:
        await ami.close()
    assert states == [True, False, True, False]  # the last one: close()


async def test_refused_login_is_logged_and_retried_without_the_secret(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-S3cret-given"
    ami = client_for(fake, secret=wrong)
    await ami.start()
    try:
        await wait_until(lambda: fake.failed_logins >= 2)
        assert not ami.connected
    finally:
        await ami.close()
    assert "refused: Authentication failed" in caplog.text
    assert wrong not in caplog.text
    assert wrong not in repr(ami)


async def test_the_secret_never_appears_in_any_log_line(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ami = client_for(fake, ping_interval=0.05, action_timeout=0.2)
    await ami.start()
    try:
        assert await ami.wait_connected(5)
        await ami.send_action("QueueStatus")
        with pytest.raises(AmiActionError):
            await ami.send_action("NoSuchAction", {"Secret": SECRET})
        fake.go_silent()
        await fake.wait_logins(2)
        await fake.drop()
        await fake.wait_logins(3)
    finally:
        await ami.close()
    assert fake.actions_named("Login")[0]["Secret"] == SECRET  # it was really sent
    assert "Login" in caplog.text  # and the logins were logged...
    assert SECRET not in caplog.text  # ...without it
    assert SECRET not in repr(ami)


async def test_a_login_that_cannot_be_written_is_not_logged_with_the_secret(
    fake: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    # An undecodable byte in SAC_IVR_AMI_SECRET reaches us as a lone surrogate; stock
    # panoramisk then logs 'Fail to send %r' with the whole Login action.
    caplog.set_level(logging.DEBUG)
    ami = client_for(fake, secret=SECRET + "\udcff")
    await ami.start()
    try:
        await wait_until(lambda: "cannot be encoded" in caplog.text)
        await wait_until(lambda: "reconnecting" in caplog.text)
        assert not ami.connected
    finally:
        await ami.close()
    assert fake.actions_named("Login") == []  # nothing half-written either
    assert SECRET not in caplog.text


async def test_an_action_lost_with_the_link_is_not_logged_with_its_fields(
    fake: FakeAmi, client: AmiClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Stock AMIProtocol.close logs every unanswered action with its fields
    # ('Adding action ... to awaiting list: ...') before queueing it again.
    caplog.set_level(logging.DEBUG)
    fake.go_silent()
    pending = asyncio.ensure_future(
        client.originate({"Channel": "Local/s@sac-test", "Variable": f"SAC_TOKEN={SECRET}"})
    )
    await fake.wait_action("Originate")
    await fake.drop()
    with pytest.raises(AmiNotConnected):
        await pending
    await fake.wait_logins(2)
    await client.ping()
    assert fake.actions_named("Originate")[0]["Variable"] == f"SAC_TOKEN={SECRET}"
    assert "Originate" in caplog.text
    assert SECRET not in caplog.text


# -- panoramisk issue #90: Originate with Async ----------------------------------------
async def test_originate_async_answers_and_its_event_reaches_subscribers(
    fake: FakeAmi, client: AmiClient
) -> None:
    events: list[dict[str, Any]] = []
    client.subscribe(events.append)
    response = await client.originate(
        {"Channel": "Local/s@sac-test", "Application": "Wait", "Data": "1"}
    )
    assert response.ok and response.message == "Originate successfully queued"
    await wait_until(lambda: any(e["Event"] == "OriginateResponse" for e in events))
    originate = next(e for e in events if e["Event"] == "OriginateResponse")
    assert originate["ActionID"] == response.get("ActionID")
    assert originate["Response"] == "Success"
    # Without Async (panoramisk looked up a missing 'async' key here)
    sync = await client.send_action("Originate", {"Channel": "Local/s@sac-test"})
    assert sync.ok
    await client.ping()
    assert client.connected


# -- panoramisk PR #79 and garbage -----------------------------------------------------
async def test_blank_lines_garbage_and_odd_messages_do_not_break_the_link(
    fake: FakeAmi, client: AmiClient
) -> None:
    events: list[dict[str, Any]] = []
    client.subscribe(events.append)
    await fake.push_raw(b"\r\n\r\n\r\n")
    await fake.push_trace("noise.ami")
    await fake.push_raw(b"\n\nEvent: PeerStatus\nPeer: PJSIP/agent2\n\n\n")  # bare LF too
    await client.ping()
    names = [e["Event"] for e in events]
    assert names == [
        "PeerStatus",
        "DeviceStateChange",
        "RTCPSent",
        "UserEvent",
        "SuccessfulAuth",
        "Hangup",
        "Newchannel",
        "Cdr",
        "PeerStatus",
    ]
    auth = events[4]
    assert auth["Service"] == "AMI" and "this line is garbage" not in str(auth)
    assert events[-1]["Peer"] == "PJSIP/agent2"
    assert fake.connections_made == 1 and client.connected


async def test_a_character_split_between_two_reads_is_kept(
    fake: FakeAmi, client: AmiClient
) -> None:
    # Stock decodes every read on its own with errors='ignore': "João" became "Joo".
    events: list[dict[str, Any]] = []
    client.subscribe(events.append)
    wire = "Event: Newchannel\r\nCallerIDName: João da Silva\r\nUniqueid: 1.1\r\n\r\n".encode()
    cut = wire.index("ã".encode()) + 1  # between the two bytes of "ã"
    seen = client.last_seen_at
    await fake.push_raw(wire[:cut])
    await wait_until(lambda: client.last_seen_at != seen)  # the first half was read alone
    await fake.push_raw(wire[cut:])
    await client.ping()
    assert events[-1]["CallerIDName"] == "João da Silva"


async def test_a_message_that_never_ends_drops_the_link_instead_of_filling_memory(
    fake: FakeAmi, client: AmiClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Stock keeps buffering until a blank line comes, without limit.
    await fake.push_raw(b"Event: Junk\r\nData: " + b"x" * (MAX_MESSAGE_CHARS + 10))
    await fake.wait_logins(2)
    assert f"a message of more than {MAX_MESSAGE_CHARS} characters" in caplog.text
    assert await client.wait_connected(5)
    await client.ping()


async def test_a_message_panoramisk_cannot_handle_is_skipped_and_the_link_kept(
    fake: FakeAmi, client: AmiClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A repeated Event header makes panoramisk's handle_message fail ('list' has no
    # lower()); stock lets that out of data_received and asyncio closes the transport.
    events: list[dict[str, Any]] = []
    client.subscribe(events.append)
    await fake.push({"Event": ["Hangup", "Hangup"], "Linkedid": "1.1"})
    await fake.push({"Event": "PeerStatus", "Peer": "PJSIP/agent1"})
    await client.ping()
    assert [e["Event"] for e in events] == ["PeerStatus"]
    assert "could not handle a message" in caplog.text
    assert fake.connections_made == 1 and client.connected


async def test_a_failing_subscriber_is_logged_and_the_others_still_get_events(
    fake: FakeAmi, client: AmiClient, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[str] = []

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    client.subscribe(broken)
    client.subscribe(lambda e: got.append(e["Event"]))
    await fake.push({"Event": "PeerStatus"}, {"Event": "DeviceStateChange"})
    await client.ping()
    assert got == ["PeerStatus", "DeviceStateChange"]
    assert "subscriber" in caplog.text and client.connected


async def test_subscribers_get_copies_and_repeated_headers_as_lists(
    fake: FakeAmi, client: AmiClient
) -> None:
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []

    def mutate(event: dict[str, Any]) -> None:
        event["Event"] = "Changed"
        first.append(event)

    client.subscribe(mutate)
    client.subscribe(second.append)
    await fake.push({"Event": "VarSet", "ChanVariable": ["A=1", "B=2"], "Value": "x: y"})
    await client.ping()
    assert first[0]["Event"] == "Changed"
    assert second[0]["Event"] == "VarSet"
    assert second[0]["ChanVariable"] == ["A=1", "B=2"]
    assert second[0]["Value"] == "x: y"


# -- event-list actions ----------------------------------------------------------------
async def test_list_actions_return_their_items(fake: FakeAmi, client: AmiClient) -> None:
    fake.channels = [
        {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "1.1", "Linkedid": "1.1"},
        {"Channel": "PJSIP/agent1-00000002", "Uniqueid": "1.2", "Linkedid": "1.1"},
    ]
    fake.queue_status = load_trace("queuestatus.ami")
    events: list[dict[str, Any]] = []
    client.subscribe(events.append)
    channels = await client.send_action("CoreShowChannels")
    queues = await client.send_action("QueueStatus")
    assert [c["Uniqueid"] for c in channels.events] == ["1.1", "1.2"]
    assert [e["Event"] for e in queues.events] == ["QueueParams", *["QueueMember"] * 3]
    assert events == []  # list items go to the action, not to subscribers


async def test_refused_action_raises_with_asterisks_reason(client: AmiClient) -> None:
    with pytest.raises(AmiActionError, match="Invalid/unknown command"):
        await client.send_action("NoSuchAction")
    response = await client.send_action("NoSuchAction", check=False)
    assert not response.ok


async def test_a_line_break_in_a_field_is_refused_before_sending(
    fake: FakeAmi, client: AmiClient
) -> None:
    with pytest.raises(ValueError, match="line break"):
        await client.send_action("Originate", {"Channel": "Local/s\r\nAction: Logoff"})
    await client.ping()
    assert fake.actions_named("Logoff") == []


async def test_a_peer_that_is_not_asterisk_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ami = AmiClient("127.0.0.1", port, "u", "s", backoff_min=0.01, backoff_max=0.02)
    await ami.start()
    try:
        await wait_until(lambda: "not an AMI server" in caplog.text)
        assert not ami.connected
    finally:
        await ami.close()
        server.close()
        await server.wait_closed()


async def test_close_logs_off(fake: FakeAmi) -> None:
    ami = client_for(fake)
    await ami.start()
    assert await ami.wait_connected(5)
    await ami.close()
    assert len(fake.actions_named("Logoff")) == 1
    assert not ami.connected
    with pytest.raises(AmiNotConnected):
        await ami.ping()


def test_traces_parse_to_asterisk_messages() -> None:
    messages = load_trace("queue_answered.ami")
    assert all("Event" in m and "Timestamp" in m for m in messages)
    assert all(m["Linkedid"] == "1732280000.1" for m in messages if "Uniqueid" in m)
    assert b"\r\n\r\n" in trace_bytes("queue_answered.ami")
    assert b";" not in trace_bytes("noise.ami").split(b"\r\n")[0]


# -- the wire format on its own (sac_ivr/asterisk/wire.py) ------------------------------
def test_framing_takes_any_read_boundary() -> None:
    wire = (
        "Asterisk Call Manager/9.0.0\r\n"
        "Response: Success\r\nActionID: a-1\r\nMessage: Authentication accepted\r\n\r\n"
        "Event: VarSet\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nValue:  x: y \r\n\r\n"
        "\r\n\r\nEvent: Newchannel\nCallerIDName: João\nUniqueid: 1.1\n\n"
        "Response: Follows\r\nActionID: a-2\r\nOutput line\r\n--END COMMAND--\r\n\r\n"
        "no colon here\r\nFoo: bar\r\n\r\n"
    ).encode()
    expected = [
        {"Response": "Success", "ActionID": "a-1", "Message": "Authentication accepted"},
        {"Event": "VarSet", "ChanVariable": ["A=1", "B=2"], "Value": "x: y"},
        {"Event": "Newchannel", "CallerIDName": "João", "Uniqueid": "1.1"},
        {"Response": "Follows", "ActionID": "a-2"},
    ]
    for size in (1, 2, 3, 7, len(wire)):  # every byte boundary, CRLF and "ã" split too
        reader = FrameReader()
        messages = []
        for start in range(0, len(wire), size):
            messages.extend(reader.feed(wire[start : start + size]))
        assert reader.version == "9.0.0"
        assert messages == expected, size


def test_framing_refuses_what_is_not_ami() -> None:
    with pytest.raises(WireError, match="not an AMI server"):
        FrameReader().feed(b"SSH-2.0-OpenSSH_9.6\r\n")
    with pytest.raises(WireError, match="not an AMI server"):
        FrameReader().feed(b"x" * 300)  # no line end within a banner's length
    reader = FrameReader()
    reader.feed(b"Asterisk Call Manager/9.0.0\r\nEvent: Junk\r\nData: ")
    with pytest.raises(WireError, match="a message of more than"):
        reader.feed(b"x" * (MAX_MESSAGE_CHARS + 1))


def test_actions_are_encoded_with_checked_fields() -> None:
    wire = encode_action(
        "Originate", "a-7", {"Channel": "Local/s@sac", "Async": True, "Variable": ["A=1", "B=2"]}
    )
    assert wire == (
        b"Action: Originate\r\nActionID: a-7\r\nChannel: Local/s@sac\r\nAsync: true\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )
    with pytest.raises(ValueError, match="line break"):
        encode_action("Ping", "a-8", {"X": "1\nAction: Logoff"})
    with pytest.raises(UnicodeEncodeError):
        encode_action("Login", "a-9", {"Secret": "s\udcff"})
