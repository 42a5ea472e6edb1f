"""Levels of the third-party loggers that would write personal data or secrets.

At DEBUG (and some at INFO) these libraries log what passes through them: every SQL
statement and result row (sqlalchemy), every call with its SQL parameters
(aiosqlite), the AGI headers with the caller's number and name and the AMI actions
and events (panoramisk), the URL of each request with its query string, where a
phone or CPF/CNPJ searched for travels (aiohttp.access). Whatever ``log_level`` is,
they log from WARNING up: nothing of a customer reaches a log line through them.
``Core.create`` applies this, so every process that handles data does.
"""

from __future__ import annotations

import logging

QUIET_LOGGERS = {
    "sqlalchemy": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "asyncpg": logging.WARNING,
    "panoramisk": logging.WARNING,
    "aiosmtplib": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "aiohttp.client": logging.WARNING,
}


def quiet_library_loggers() -> None:
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
