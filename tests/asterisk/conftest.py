"""Fixtures for the real-Asterisk tests: one Asterisk per test session.

These tests need root, util-linux and a Debian host with mmdebstrap (to build the
chroot once; see tests/asterisk/chroot.py) and SIPp for SIP calls. Where that is
missing they SKIP with a one-line reason, unless ``SAC_IVR_REQUIRE_ASTERISK=1`` (CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.asterisk import chroot
from tests.asterisk.ami import AmiClient
from tests.asterisk.audio import PromptLibrary
from tests.asterisk.instance import AsteriskError, AsteriskInstance
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import SipAgent, SipCall

_instance: AsteriskInstance | None = None


def require() -> bool:
    return os.environ.get("SAC_IVR_REQUIRE_ASTERISK", "").strip() not in ("", "0", "no", "false")


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``, or fail it when Asterisk is required."""
    if require():
        pytest.fail(f"SAC_IVR_REQUIRE_ASTERISK=1: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.asterisk)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and _instance is not None and "asterisk" in getattr(item, "fixturenames", ()):
        report.sections.append(
            ("Asterisk", f"logs in {_instance.log_dir}\n{_instance.log_tail(40)}")
        )


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    """The running Asterisk (project dialplan included, no sac-ivr on its AGI port).

    A test that needs the service starts ``sac-ivr serve`` itself with
    ``asterisk.sac_ivr_env()`` (FastAGI on ``asterisk.agi_port``).
    """
    global _instance
    reason = chroot.unavailable_reason()
    if reason:
        unavailable(reason)
    try:
        chroot.ensure_chroot()
    except chroot.ChrootUnavailable as exc:
        unavailable(str(exc).splitlines()[0])
    inst = AsteriskInstance(tmp_path_factory.mktemp("asterisk"))
    try:
        inst.start()
    except AsteriskError as exc:
        inst.stop()
        pytest.fail(f"Asterisk did not start: {exc}", pytrace=False)
    _instance = inst
    yield inst
    _instance = None
    inst.stop()


@pytest.fixture(scope="session")
def ami(asterisk: AsteriskInstance) -> Iterator[AmiClient]:
    """An AMI connection (test user, all classes) that records every event."""
    client = AmiClient(
        asterisk.ami_host, asterisk.ports.ami, asterisk.ami_user, asterisk.ami_secret
    )
    client.connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def service_ami(asterisk: AsteriskInstance) -> Iterator[AmiClient]:
    """An AMI connection as the service's user (dialplan/manager.conf.sample rights)."""
    client = AmiClient(
        asterisk.ami_host,
        asterisk.ports.ami,
        asterisk.service_ami_user,
        asterisk.service_ami_secret,
    )
    client.connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def prompts(asterisk: AsteriskInstance) -> PromptLibrary:
    """The prompts as this instance plays them (the project's, or the stand-in)."""
    return PromptLibrary(asterisk.sounds_dir)


@pytest.fixture(scope="session")
def sipp_available() -> None:
    if shutil.which("sipp") is None:
        unavailable("SIP call tests need sipp (Debian package sip-tester)")


@pytest.fixture
def sip_call(
    asterisk: AsteriskInstance, prompts: PromptLibrary, sipp_available: None
) -> Iterator[Callable[..., SipCall]]:
    """Factory: ``sip_call(extension="s", dtmf=[...], hangup_after=None)`` makes (not
    starts) a call; every call made is killed at teardown."""
    calls: list[SipCall] = []

    def make(**kwargs: Any) -> SipCall:
        kwargs.setdefault("prompts", prompts)
        call = SipCall(asterisk, **kwargs)
        calls.append(call)
        return call

    yield make
    for call in calls:
        call.stop()


@pytest.fixture
def sip_agent(
    asterisk: AsteriskInstance, prompts: PromptLibrary, sipp_available: None
) -> Iterator[Callable[..., SipAgent]]:
    """Factory: ``sip_agent(index=0)`` starts an agent phone (SIPp UAS) for endpoint
    ``sac-agent-<index+1>``; add ``agent.interface`` to the queue with AMI QueueAdd."""
    agents: list[SipAgent] = []

    def make(**kwargs: Any) -> SipAgent:
        kwargs.setdefault("prompts", prompts)
        agent = SipAgent(asterisk, **kwargs).start()
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture
def sac_ivr(asterisk: AsteriskInstance) -> Iterator[Callable[..., SacIvrService]]:
    """Factory: ``sac_ivr(env={"SAC_IVR_...": ...})`` starts the real ``sac-ivr serve``
    on the instance's AGI port (AMI as the sample's sac-ivr user, fresh SQLite) and
    waits until it is READY; stopped at teardown. One at a time (one AGI port)."""
    core: list[SacIvrService] = []

    def start(**kwargs: Any) -> SacIvrService:
        service = SacIvrService(asterisk, name=f"sac-ivr-{len(core)}", **kwargs).start()
        core.append(service)
        return service

    yield start
    for service in core:
        service.stop()
