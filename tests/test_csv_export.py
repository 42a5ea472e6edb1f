"""CSV exports never hand a spreadsheet a formula (OWASP "CSV injection"): a text
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
written with a leading apostrophe, in every listing and report; numbers stay numbers.
"""

from __future__ import annotations

import csv
import io

import aiohttp
from sqlalchemy import update

from sac_ivr.auth.services import create_token
from sac_ivr.protocols.tables import Protocol
from sac_ivr.runner import RunningService
from tests.fakeasterisk.agi import fake_call

DANGEROUS = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


async def csv_rows(running: RunningService, token: str, path: str) -> list[dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"http://127.0.0.1:{running.http_port}{path}",
            params={"format": "csv", "limit": "1000"},
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            assert r.status == 200 and r.content_type == "text/csv"
            return list(csv.DictReader(io.StringIO(await r.text(), newline="")))


async def test_formula_cells_are_escaped_in_listings_and_reports(
    running: RunningService,
) -> None:
    token = await create_token(running.core.sessionmaker, "sofia", "supervisor")
    numbers = []
    for i, value in enumerate([*DANGEROUS, "Ana Souza"]):
        call = await fake_call(
            "127.0.0.1", running.agi_port, uniqueid=f"17000000{i:02d}.1", callerid="11987654321"
        )
        number = call.variables["SAC_PROTOCOL"]
        numbers.append(number)
        # Stored as is (the API strips leading blanks; another client, an import or a
        # migration might not).
        async with running.core.sessionmaker() as session, session.begin():
            await session.execute(
                update(Protocol).where(Protocol.number == number).values(agent=value)
            )
    expected = {n: "'" + v for n, v in zip(numbers, DANGEROUS, strict=False)}
    expected[numbers[-1]] = "Ana Souza"

    for path in ("/api/v1/protocols?phone=11987654321", "/api/v1/reports/pending"):
        rows = await csv_rows(running, token, path)
        agents = {r["number"]: r["agent"] for r in rows}
        assert agents == expected, path
        for row in rows:
            for column, cell in row.items():
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (path, column)
        # The caller's E.164 number is text that starts with "+": escaped as well.
        if "caller_e164" in rows[0]:
            assert {r["caller_e164"] for r in rows} == {"'+5511987654321"}
