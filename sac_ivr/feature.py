"""What a feature declares about itself: one :class:`Feature` in its ``feature.py``.

The list of them, :data:`sac_ivr.features.FEATURES`, is the only registry: the
tables alembic sees, the HTTP routes, the AGI routes, the background work of the web
process, the CLI commands and the settings checks all come from it. A feature that
offers a hook (a list of callables other features add to while the process's
:class:`~sac_ivr.core.Core` is built, before anything runs) names it in ``offers``;
one that adds to it names it in ``uses`` and adds in ``wire``.

This module is at the bottom: it knows the shapes, not the features nor the core
(``CoreT`` stands for :class:`~sac_ivr.core.Core`).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.config import Settings

CoreT = TypeVar("CoreT")
F = TypeVar("F")


class Hook(Generic[F]):
    """A list of callables of one type, offered by one feature and filled by the
    features that use it while the core is built. Call sites iterate over it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[F] = []

    def add(self, callback: F) -> None:
        self._callbacks.append(callback)

    def __iter__(self) -> Iterator[F]:
        return iter(self._callbacks)

    def __len__(self) -> int:
        return len(self._callbacks)

    def __repr__(self) -> str:
        return f"Hook({self.name!r}, {len(self._callbacks)} callback(s))"


class Stoppable(Protocol):
    """Background work started by a feature; the core stops it when it closes."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Commands(Generic[CoreT]):
    """What a feature's CLI commands get from the top layer: settings loaded and
    checked by every feature, and a core wired from every feature."""

    load_settings: Callable[[argparse.Namespace], Settings]
    build_core: Callable[[Settings], CoreT]


AgiRoute = Callable[[AgiCall, CoreT], Awaitable[None]]


@dataclass(frozen=True)
class Feature(Generic[CoreT]):
    """One feature's whole wiring. Every part is optional but the name."""

    name: str
    # The other feature packages it imports (``sac_ivr.<package>``): the features are
    # independent but for these, which import-linter checks (pyproject.toml).
    depends_on: tuple[str, ...] = ()
    # Its SQLAlchemy tables (imported for Base.metadata: alembic, test databases).
    tables: ModuleType | None = None
    # Adds its HTTP routes (and anything it adds to others' answers) to the app.
    http: Callable[[web.Application], None] | None = None
    # AGI route name (the dialplan's agi://host/<name>) -> handler.
    agi_routes: Mapping[str, AgiRoute[CoreT]] = field(default_factory=dict)
    # Web process only, once HTTP serves: start background work; what it returns is
    # stopped when the core closes.
    background: Callable[[CoreT], Awaitable[Stoppable | None]] | None = None
    # Adds its ``sac-ivr`` subcommands (argparse subparsers action).
    cli: Callable[[Any, Commands[CoreT]], None] | None = None
    # Refuses settings of this feature that could not work (raises ConfigError).
    check_settings: Callable[[Settings], None] | None = None
    # Hooks it offers (documented where the hook is declared) and hooks it uses.
    offers: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    # While the core is built, before anything runs: adds its callables to the hooks
    # it uses, and gives the core the objects it keeps for the process.
    wire: Callable[[CoreT], None] | None = None
