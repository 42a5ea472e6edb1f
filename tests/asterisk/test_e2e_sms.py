"""Issue 5, "SMS on request", for real: Asterisk 22, the project's dialplan and sounds,
the real ``sac-ivr serve`` configured through ``SAC_IVR_*`` variables to send SMS with
the ``zenvia`` provider, and a local fake of Zenvia's API (an aiohttp server in a
thread of this process) instead of api.zenvia.com.

Two SIP callers at once (one module fixture): one presses 2 while the announcement
offers "para receber este protocolo por SMS, tecle 2", hears the confirmation, goes
on to the menu, presses 0 and joins the agents' queue; the other presses nothing. The
opening SMS is off (``notify_open_sms=0``), so the only SMS is the one asked for.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from sac_ivr.phones import normalize_phone
from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import Heard, PromptLibrary
from tests.asterisk.e2e_api import api, create_token, service_errors, wait_until
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import CallResult, Dtmf, SipCall

INTRO = "sac/protocol-intro"
OUTRO = "sac/protocol-outro"
REPEAT_OFFER = "sac/protocol-repeat-offer"
SMS_OFFER = "sac/protocol-sms-offer"
SMS_SENT = "sac/protocol-sms-sent"
MENU = "sac/menu-main"
TRANSFER = "sac/transfer-attendant"
ZENVIA_PATH = "/v2/channels/sms/messages"
ZENVIA_TOKEN = "zenvia-test-token"
SENDER = "acme-sac"
COMPANY = "ACME Telecom"


class FakeZenvia:
    """Zenvia's SMS API v2 as sac-ivr calls it: ``POST /v2/channels/sms/messages``
    with ``X-API-TOKEN`` and ``{"from", "to", "contents": [{"type": "text", "text"}]}``;
    answers like Zenvia (the message with its ``id``). Runs its own event loop in a
    thread, so the blocking test code can wait for calls meanwhile."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.received: list[dict[str, Any]] = []  # {"headers", "body", "accepted"}
        self.port = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{ZENVIA_PATH}"

    def start(self) -> FakeZenvia:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post(ZENVIA_PATH, self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        accepted = request.headers.get("X-API-TOKEN") == self.token
        with self._lock:
            self.received.append(
                {"headers": dict(request.headers), "body": body, "accepted": accepted}
            )
            message_id = f"zv-{len(self.received):04d}"
        if not accepted:
            return web.json_response({"code": "UNAUTHORIZED"}, status=401)
        return web.json_response(
            {"id": message_id, "direction": "OUT", "channel": "sms", **body}, status=200
        )

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@dataclass
class Caller:
    name: str
    call: SipCall
    result: CallResult | None = None
    heard: list[Heard] = field(default_factory=list)
    joined: Message | None = None
    protocol: dict[str, Any] | None = None  # GET /api/v1/protocols/{number}

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.heard]

    @property
    def e164(self) -> str:
        e164 = normalize_phone(self.call.caller_num)
        assert e164 is not None
        return e164

    @property
    def number(self) -> str:
        assert self.protocol is not None, f"{self.name}: no protocol found"
        return str(self.protocol["number"])

    def explain(self) -> str:
        where = self.result.work_dir if self.result else ""
        return f"{self.name}: heard {self.names}; {where}"


@dataclass
class SmsScene:
    service: SacIvrService
    zenvia: FakeZenvia
    token: str
    asker: Caller
    silent: Caller
    sms_varsets: list[Message]


@pytest.fixture(scope="module")
def zenvia() -> Iterator[FakeZenvia]:
    fake = FakeZenvia(ZENVIA_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def service(asterisk: AsteriskInstance, zenvia: FakeZenvia) -> Iterator[SacIvrService]:
    """``sac-ivr serve`` with SMS through "Zenvia" (the fake), configured by env."""
    svc = SacIvrService(
        asterisk,
        name="sac-ivr-e2e-sms",
        env={
            "SAC_IVR_SMS_PROVIDER": "zenvia",
            "SAC_IVR_SMS_URL": zenvia.url,
            "SAC_IVR_SMS_SECRET": ZENVIA_TOKEN,
            "SAC_IVR_SMS_SENDER": SENDER,
            "SAC_IVR_COMPANY_NAME": COMPANY,
            "SAC_IVR_NOTIFY_OPEN_SMS": "0",
            # the caller who presses nothing waits 1 s for a key, not 3
            "SAC_IVR_ANNOUNCE_DIGIT_TIMEOUT_MS": "1000",
        },
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def _find_protocol(service: SacIvrService, token: str, e164: str) -> dict[str, Any] | None:
    status, page = api(service, f"/api/v1/protocols?phone={e164.replace('+', '%2B')}", token)
    assert status == 200, page
    if len(page["items"]) != 1:
        return None
    status, body = api(service, f"/api/v1/protocols/{page['items'][0]['number']}", token)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scene(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    service: SacIvrService,
    zenvia: FakeZenvia,
    sipp_available: None,
) -> Iterator[SmsScene]:
    token = create_token(service, "e2e-sms", "agent")
    since = ami.mark()
    asker = Caller(
        "asker",
        SipCall(
            asterisk,
            prompts=prompts,
            dtmf=[Dtmf("2", during=SMS_OFFER, delay=0.5), Dtmf("0", during=MENU, delay=0.5)],
        ),
    )
    silent = Caller("silent", SipCall(asterisk, prompts=prompts))
    try:
        asker.call.start()
        silent.call.start()
        # the asker: until it joined the queue (the dialplan went on after the SMS)
        asker.joined = ami.wait_event(
            {"Event": "QueueCallerJoin", "CallerIDNum": asker.call.caller_num},
            timeout=90,
            since=since,
        )
        time.sleep(0.3)
        ami.action("Hangup", Channel=asker.joined["Channel"])
        # the silent one: until the menu has been playing for a moment
        menu = ami.wait_event(
            {"Event": "Newexten", "Context": "sac-menu", "CallerIDNum": silent.call.caller_num},
            timeout=90,
            since=since,
        )
        time.sleep(1.0)
        ami.action("Hangup", Channel=menu["Channel"])
        for caller in (asker, silent):
            caller.result = caller.call.wait(30)
            caller.heard = prompts.find(caller.result.audio)
            caller.protocol = _find_protocol(service, token, caller.e164)
        yield SmsScene(
            service=service,
            zenvia=zenvia,
            token=token,
            asker=asker,
            silent=silent,
            sms_varsets=ami.find_events(
                {"Event": "VarSet", "Variable": "SAC_SMS_REQUESTED"}, since
            ),
        )
    finally:
        asker.call.stop()
        silent.call.stop()


def announcement(number: str) -> list[str]:
    """One whole reading (the silent sac/pause between groups can't be seen)."""
    return [INTRO, *(f"digits/{d}" for d in number), OUTRO]


def _timeline(scene: SmsScene, number: str) -> list[dict[str, Any]]:
    status, body = api(scene.service, f"/api/v1/protocols/{number}", scene.token)
    assert status == 200, body
    return list(body["events"])


def test_caller_hears_the_offer_presses_2_and_hears_it_is_sent(
    scene: SmsScene, prompts: PromptLibrary
) -> None:
    a = scene.asker
    number = a.number
    assert a.names == [*announcement(number), REPEAT_OFFER, SMS_OFFER, SMS_SENT, MENU, TRANSFER], (
        a.explain()
    )
    complete = {h.name: h.complete for h in a.heard}
    # 2 cut the offer short; the confirmation was heard to its end
    assert complete[SMS_OFFER] is False and complete[SMS_SENT] is True, a.heard
    assert prompts.digits(a.result.audio if a.result else b"") == number
    assert a.result is not None and [d for d, _ in a.result.sent_dtmf] == ["2", "0"]
    # the route told the dialplan (AMI VarSet on the caller's channel)
    assert [e["Value"] for e in scene.sms_varsets] == ["1"]
    assert scene.sms_varsets[0]["CallerIDNum"] == a.call.caller_num


def test_provider_gets_exactly_one_sms_to_the_caller_with_the_number(scene: SmsScene) -> None:
    number = scene.asker.number
    events = wait_until(
        lambda: [e for e in _timeline(scene, number) if e["kind"] == "notification_sent"],
        "the SMS to be recorded as sent on the timeline",
    )
    (message,) = scene.zenvia.messages()  # one, and none for the silent caller
    assert message["accepted"], message["headers"]
    body = message["body"]
    # Zenvia takes the E.164 digits without "+"
    assert "+" + body["to"] == scene.asker.e164
    assert body["from"] == SENDER
    (content,) = body["contents"]
    assert content["type"] == "text"
    text = content["text"]
    # pt-BR, GSM-7 (accents folded: sms_ascii is on by default)
    assert text.startswith(f"{COMPANY}: seu protocolo de atendimento e {number}, de "), text
    assert text.isascii() and "Resposta ate " in text, text
    (sent,) = events
    assert sent["data"]["channel"] == "sms" and sent["data"]["provider_id"] == "zv-0001"
    assert sent["data"]["notice"] == "sms_request"


def test_the_request_is_on_the_protocol_timeline(scene: SmsScene) -> None:
    events = _timeline(scene, scene.asker.number)
    (requested,) = [e for e in events if e["kind"] == "sms_requested"]
    assert requested["actor"] == "caller"
    assert requested["data"]["result"] == "queued"
    # then the menu choice: the call went on with its number
    choices = [e["data"]["choice"] for e in events if e["kind"] == "menu_choice"]
    assert choices == ["attendant"], events


def test_caller_goes_on_to_the_menu_and_the_queue(scene: SmsScene) -> None:
    a = scene.asker
    assert a.joined is not None and a.joined["Queue"] == "sac-agents"
    assert a.names.index(MENU) > a.names.index(SMS_SENT), a.explain()
    assert a.result is not None and a.result.bye_received


def test_caller_who_presses_nothing_gets_no_sms(scene: SmsScene, prompts: PromptLibrary) -> None:
    s = scene.silent
    number = s.number
    assert s.names == [*announcement(number), REPEAT_OFFER, SMS_OFFER, MENU], s.explain()
    assert all(h.complete for h in s.heard if h.name != MENU), s.heard
    events = _timeline(scene, number)
    assert not [e for e in events if e["kind"] in ("sms_requested", "notification_sent")]
    assert all("+" + m["body"]["to"] != s.e164 for m in scene.zenvia.messages())


def test_service_logged_no_errors(scene: SmsScene) -> None:
    assert service_errors(scene.service) == []
