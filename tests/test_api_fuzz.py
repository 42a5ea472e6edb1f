"""The whole HTTP API fuzzed from its own OpenAPI document (schemathesis): no input,
valid or not, with any role, gets a 5xx, and every answer matches the document
(status code, content type, JSON schema).

The service runs on SQLite in a thread of its own (its own event loop), so that
schemathesis' blocking client can call it from the test. A protocol, a history
request and its e-mail notification are seeded, and operations with a protocol
number or an id in their path get a second round with those, so that bodies and
queries get past the lookup. On top of schemathesis' own cases, about two in three
get one part replaced by a known-hostile value (the inputs of issue #8: other
scripts' digits, overflowing dates, deep or invalid JSON, a non-UTF-8 token).

Each operation gets ``SAC_IVR_FUZZ_EXAMPLES`` positive and as many negative
(schema-violating) cases per round and role (default 12), with hypothesis
derandomized so that a run is repeatable; set ``SAC_IVR_FUZZ_SEED`` to explore
other inputs. The counts are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from sac_ivr.auth.services import create_token
from sac_ivr.history.services import create_request
from sac_ivr.http.openapi import build_openapi
from sac_ivr.runner import RunningService, start_service
from tests.conftest import make_settings, new_database
from tests.fakeasterisk.agi import fake_call

EXAMPLES = int(os.environ.get("SAC_IVR_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("SAC_IVR_FUZZ_SEED")
ROLES = ("none", "agent", "supervisor", "admin")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The live event stream never ends by itself; it is covered by test_panels.py.
SKIP = {("GET", "/api/v1/live/events")}


@dataclass
class Served:
    base: str
    tokens: dict[str, str]
    protocol: str
    loop: asyncio.AbstractEventLoop
    running: RunningService


@dataclass
class Tally:
    cases: int = 0
    server_errors: int = 0
    # (role, operation, what failed) -> a curl command that shows it
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)


def _serve(url: str, ready: dict[str, Any]) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = ready["stop"] = asyncio.Event()

    async def seed(running: RunningService) -> None:
        ready["tokens"] = {
            role: await create_token(running.core.sessionmaker, f"fuzz-{role}", role)
            for role in ROLES[1:]
        }
        result = await fake_call("127.0.0.1", running.agi_port, callerid="11987654321")
        ready["protocol"] = result.variables["SAC_PROTOCOL"]
        # History request 1 and, for its e-mail, notification 1.
        await create_request(
            running.core,
            "fuzz",
            phone="+5511987654321",
            document_number=None,
            delivery="email",
            email="cliente@example.com",
            protocol_number=ready["protocol"],
        )

    try:
        running = loop.run_until_complete(start_service(make_settings(url), migrate=False))
        loop.run_until_complete(seed(running))
    except BaseException as exc:
        ready["error"] = exc
        ready["event"].set()
        loop.close()
        return
    ready["running"] = running
    ready["loop"] = loop
    ready["event"].set()

    async def wait_stop() -> None:
        await stop.wait()
        await running.stop(drain_seconds=1.0)

    loop.run_until_complete(wait_stop())
    loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    url, _ = new_database("sqlite", tmp)
    ready: dict[str, Any] = {"event": threading.Event()}
    thread = threading.Thread(target=_serve, args=(url, ready), daemon=True)
    thread.start()
    assert ready["event"].wait(60), "the service did not start"
    if "error" in ready:
        raise ready["error"]
    running: RunningService = ready["running"]
    served = Served(
        base=f"http://127.0.0.1:{running.http_port}",
        tokens=ready["tokens"],
        protocol=ready["protocol"],
        loop=ready["loop"],
        running=running,
    )
    yield served
    served.loop.call_soon_threadsafe(ready["stop"].set)
    thread.join(30)


# Values that broke parsers before (issue #8): digits of other scripts, dates whose
# later arithmetic overflows, NUL, huge or non-finite numbers, overlong names.
HOSTILE_TEXT = [
    "²",
    "٣",
    "３",
    "12٣",
    "9999-12-31",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "\x00",
    "a\x00b",
    "1e999",
    "9" * 40,
    "-1",
    "a" * 300,
    "../../etc/passwd",
]
# JSON bodies (sent as bytes) that broke the reader: nesting, lone surrogates,
# duplicate keys, NaN, non-UTF-8.
HOSTILE_BODIES = [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b'{"notes": "\\ud800"}',
    b'{"customer_name": "x\\udfff"}',
    b'{"to_status": "open", "to_status": "closed"}',
    b'{"notes": NaN}',
    b'{"phone": 1' + b"0" * 5000 + b"}",
    b'{"notes": "caf\xe9"}',
]


def _hostile(case: Any, data: st.DataObject, headers: dict[str, str], served: Served) -> None:
    """Now and then, replace one part of a generated case with a known-hostile value."""
    where = data.draw(st.sampled_from(["none", "none", "query", "path", "body", "header"]))
    if where == "query" and case.operation.query:
        name = data.draw(st.sampled_from([p.name for p in case.operation.query]))
        case.query = {**(case.query or {}), name: data.draw(st.sampled_from(HOSTILE_TEXT))}
    elif where == "path" and case.path_parameters:
        name = data.draw(st.sampled_from(sorted(case.path_parameters)))
        value = data.draw(st.sampled_from(HOSTILE_TEXT)).replace("/", "_")
        case.path_parameters = {**case.path_parameters, name: value}
    elif where == "body" and case.operation.body:
        case.body = data.draw(st.sampled_from(HOSTILE_BODIES))
        case.media_type = "application/json"
    elif where == "header":
        # A non-UTF-8 byte (sent as Latin-1 by the client) where the token goes.
        headers["Authorization"] = data.draw(
            st.sampled_from(["Bearer sac_\xff\xfe", "Bearer \xe9"])
        )


def _fuzz_operation(operation: Any, served: Served, role: str, tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {served.tokens[role]}"} if role != "none" else {}
    label = f"{operation.method.upper()} {operation.path}"
    # Generated path parameters are rarely a real protocol or id: one more round
    # with the seeded ones, so that bodies and queries get past the lookup.
    names = {p.name for p in operation.path_parameters}
    seeded = {"number": served.protocol, "id": 1, "name": "pending"}
    fixed = {name: seeded[name] for name in names if name in seeded}
    rounds = [None, fixed] if fixed else [None]
    for mode, path_parameters in itertools.product(
        (GenerationMode.POSITIVE, GenerationMode.NEGATIVE), rounds
    ):
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=SEED is None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=strategy, data=st.data())
        def run(case: Any, data: st.DataObject) -> None:
            call_headers = dict(headers)
            _hostile(case, data, call_headers, served)
            response = case.call(base_url=served.base, headers=call_headers, timeout=30)
            tally.cases += 1
            if response.status_code >= 500:
                tally.server_errors += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=call_headers)
            except FailureGroup as exc:  # keep going: report every distinct failure at the end
                for failure in exc.exceptions:
                    what = f"{failure.title}: {failure.message}".replace("\n", " ")[:300]
                    tally.failures.setdefault((role, label, what), case.as_curl_command())

        if SEED is not None:
            run = hypothesis.seed(int(SEED))(run)
        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # Nothing to get wrong (no parameters, no body): no negative case exists.
            assert mode == GenerationMode.NEGATIVE, label


@pytest.mark.parametrize("role", ROLES)
def test_no_input_gets_a_server_error_and_answers_match_the_document(
    served: Served, role: str
) -> None:
    schema = schemathesis.openapi.from_dict(build_openapi())
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        _fuzz_operation(operation, served, role, tally)
    print(f"\nschemathesis, role {role}: {tally.cases} cases, {tally.server_errors} 5xx")
    report = [f"[{r}] {op}: {what}\n    {curl}" for (r, op, what), curl in tally.failures.items()]
    assert tally.server_errors == 0 and not report, "\n".join(sorted(report)[:40])
