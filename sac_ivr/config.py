"""Settings: defaults < TOML file < environment (SAC_IVR_*) < command-line flags.

Every setting is one field of :class:`Settings`; its ``help`` metadata is what
``sac-ivr serve --help`` prints, so the reference in the README and the CLI agree.

This module knows no feature: it checks the settings every part shares (listeners,
time zone, log level); each feature checks its own (its ``Feature.check_settings``),
run by :func:`sac_ivr.features.load_settings`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "SAC_IVR_"
CONFIG_ENV = "SAC_IVR_CONFIG"


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


# A feature's own settings check (its Feature.check_settings): raises ConfigError.
SettingsCheck = Callable[["Settings"], None]


def _setting(default: Any, help: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class Settings:
    # -- listeners
    agi_host: str = _setting("127.0.0.1", "FastAGI bind address (where Asterisk connects).")
    agi_port: int = _setting(4573, "FastAGI port (4573 is Asterisk's usual).")
    agi_header_timeout: float = _setting(
        5.0, "Seconds a FastAGI peer has to send its whole agi_* header block."
    )
    agi_command_timeout: float = _setting(
        120.0, "Seconds to wait for Asterisk's answer to one AGI command (prompts included)."
    )
    agi_max_connections: int = _setting(
        1000,
        "FastAGI calls in progress at once, counted from a complete agi_* header block "
        "(connections still sending theirs hold no slot); more wait for a free slot.",
    )
    agi_allowed_peers: list[str] = _setting(  # noqa: RUF009
        ["127.0.0.0/8", "::1/128"],
        "Addresses (CIDRs) allowed to connect to FastAGI (your Asterisk servers); any "
        "other is closed at once. 0.0.0.0/0, ::/0 allows everyone.",
    )
    http_host: str = _setting("127.0.0.1", "HTTP bind address (API, panels).")
    http_port: int = _setting(8080, "HTTP port.")
    http_header_timeout: float = _setting(
        10.0, "Seconds a client has to send a request's line and headers (from its first byte)."
    )
    http_body_timeout: float = _setting(
        30.0, "Seconds a client has to send a request's body, once its headers are in."
    )
    http_keepalive_timeout: float = _setting(
        15.0, "Seconds an idle keep-alive connection stays open between requests."
    )
    http_max_connections: int = _setting(
        2000,
        "HTTP connections open at once (live event streams included); more are closed at once.",
    )
    http_max_connections_per_client: int = _setting(
        200,
        "HTTP connections open at once from one client address; more are closed at once. "
        "Behind a reverse proxy every client has the proxy's address: raise it to "
        "http_max_connections.",
    )
    public_base_url: str = _setting(
        "", "URL agents use to reach this service (links in SIP headers); default http://HOST:PORT."
    )
    # -- storage
    database_url: str = _setting(
        "sqlite+aiosqlite:///var/sac-ivr.sqlite3",
        "SQLAlchemy URL: sqlite+aiosqlite:///PATH (embedded) or postgresql+asyncpg://...; "
        "a primary and standby: postgresql+asyncpg://USER@/DB?host=H1:5432&host=H2:5432"
        "&target_session_attrs=read-write (see Running at scale).",
    )
    # -- protocol numbers
    timezone: str = _setting("America/Sao_Paulo", "Local time zone of the dates in numbers.")
    protocol_format: str = _setting(
        "date-seq-check",
        "date-seq-check (YYYYMMDD + 6-digit daily sequence + Damm check digit), "
        "ans (6-digit ANS registry + YYYYMMDD + 6-digit daily sequence), "
        "or sequence (one global sequence, protocol_sequence_width digits).",
    )
    ans_registry: str = _setting("", "6-digit ANS operator registry (protocol_format=ans).")
    protocol_sequence_width: int = _setting(
        12, "Digits of the global sequence (protocol_format=sequence)."
    )
    protocol_reserve_block: int = _setting(
        1000,
        "PostgreSQL: numbers each instance reserves ahead per counter (today and "
        "tomorrow) to issue while the database is unreachable; 0: no reserve.",
    )
    protocol_journal_path: str = _setting(
        "var/protocol-journal.sqlite3",
        "Local journal (SQLite) of the reserved blocks and of the numbers issued from "
        "them during a database outage; one per instance.",
    )
    protocol_db_timeout: float = _setting(
        1.0,
        "PostgreSQL: seconds an issuing transaction may take before the callers get "
        "numbers from the reserve instead (a frozen or unreachable server).",
    )
    say_group_size: int = _setting(3, "Digits read together before a short pause.")
    announce_repeats: int = _setting(2, "How many times the caller may hear the number again.")
    announce_digit_timeout_ms: int = _setting(
        3000, "Milliseconds to wait for a key after the closing prompt."
    )
    # -- AMI (call log, live panels)
    ami_enabled: bool = _setting(False, "Follow calls over the Asterisk Manager Interface.")
    ami_host: str = _setting("127.0.0.1", "AMI host.")
    ami_port: int = _setting(5038, "AMI port.")
    ami_username: str = _setting("sac-ivr", "AMI user (see dialplan/manager.conf.sample).")
    ami_secret: str = _setting("", "AMI secret (never logged).")
    ami_action_timeout: float = _setting(5.0, "Seconds to wait for the answer to one AMI action.")
    ami_ping_interval: float = _setting(10.0, "Seconds between AMI pings that prove the link.")
    ami_reconnect_max: float = _setting(
        30.0, "Longest wait between AMI reconnection attempts (the wait doubles from 0.5 s)."
    )
    ami_servers: list[str] = _setting(  # noqa: RUF009
        [],
        "Asterisk servers to follow, NAME=HOST:PORT each (comma-separated in the "
        "environment; NAME: up to 64 letters, digits, '.', '_' or '-', stored with every "
        "call); empty: one server named 'default' at ami_host:ami_port. All log in as "
        "ami_username/ami_secret.",
    )
    ami_follow_retry: float = _setting(
        1.0,
        "PostgreSQL: seconds between an instance's tries to become the one that writes "
        "an Asterisk's call log (another instance holds it until it dies).",
    )
    ami_follow_expiry: float = _setting(
        5.0,
        "PostgreSQL: seconds after which an unresponsive (frozen) follower's database "
        "session is ended, so another instance takes over.",
    )
    ami_alive_interval: float = _setting(
        2.0,
        "Seconds between records that a server's calls are still followed: a call that "
        "ended while no instance followed it is closed at the last record.",
    )
    ami_reconcile_interval: float = _setting(
        300.0,
        "Seconds between checks of the call log against Asterisk's channel list (it is also "
        "checked after every AMI reconnect); 0: only after reconnects.",
    )
    # -- panels (agent panel, supervisor view)
    panels_max_wait_s: int = _setting(
        60,
        "Longest wait to reach an attendant before the panels flag it (Portaria MJ "
        "2.014/2008: 60 s; 45 s for financial services; up to 90 s on Mondays, the days "
        "before and after holidays and the 5th business day).",
    )
    panels_mask_queue_callers: bool = _setting(
        True, "Agents see only the last 4 digits of callers in the queue (their own calls in full)."
    )
    panels_heartbeat_s: float = _setting(
        15.0, "Seconds between heartbeats on the live event stream (keeps proxies from closing it)."
    )
    panels_session_hours: float = _setting(
        12.0,
        "Hours a panel login lasts (one shift): the session expires on the server, and "
        "logging out or revoking the token ends it at once.",
    )
    panels_max_streams_per_token: int = _setting(
        5, "Live event streams (SSE) one token may hold open at once; more are refused (429)."
    )
    # -- public lookup and client addresses
    public_lookups_per_hour: int = _setting(
        300,
        "Lookups of a protocol without a token one client address may make per hour (bursts "
        "of a tenth of it); beyond it 429 with Retry-After.",
    )
    public_verify_failures_per_number: int = _setting(
        5,
        "Wrong second factors (last digits of the phone or CPF/CNPJ) a protocol number takes "
        "per day; then its subject and notes are locked for the day (a signed link still works).",
    )
    public_verify_failures_per_client: int = _setting(
        10, "Wrong second factors one client address may send per day, for any numbers."
    )
    trusted_proxies: list[str] = _setting(  # noqa: RUF009
        [],
        "Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the client, for "
        "rate limits and the access log; empty: the connecting address is the client.",
    )
    # -- logging
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR.")
    # -- lifecycle (statuses, subjects, legal deadlines)
    legal_profile: str = _setting(
        "decreto-11034",
        "Deadlines: decreto-11034 (reply in 7 calendar days, history in 5), decreto-6523 "
        "(5 business days, history in 72 h), ans (5 business days, 10 for extended_subjects, "
        "history in 72 h) or custom (the custom_* settings).",
    )
    custom_reply_deadline: str = _setting(
        "7d",
        "legal_profile=custom: reply deadline, e.g. 7d (calendar days), 5bd (business "
        "days) or 72h (hours).",
    )
    custom_extended_reply_deadline: str = _setting(
        "", "legal_profile=custom: deadline for extended_subjects (empty: same as the reply)."
    )
    custom_history_deadline: str = _setting(
        "5d", "legal_profile=custom: deadline to send a customer's history of demands."
    )
    extended_subjects: list[str] = _setting(  # noqa: RUF009
        ["high_complexity", "elective_admission"],
        "Subjects with the profile's longer deadline (ANS: high complexity, elective admission).",
    )
    holidays_state: str = _setting(
        "", "State (UF, e.g. SP) whose holidays also stop business days; empty: national only."
    )
    holidays_optional: list[str] = _setting(  # noqa: RUF009
        ["carnival"],
        "Optional national days off that stop business days: carnival, ash_wednesday, "
        "corpus_christi, christmas_eve, new_years_eve.",
    )
    holidays_extra: list[str] = _setting(  # noqa: RUF009
        [], "Local holidays: YYYY-MM-DD (once) or MM-DD (every year), e.g. 01-25."
    )
    subjects: list[str] = _setting(  # noqa: RUF009
        [
            "information:Informação",
            "complaint:Reclamação",
            "cancellation:Cancelamento",
            "billing:Cobrança",
            "technical:Suporte técnico",
            "suggestion:Sugestão",
            "compliment:Elogio",
        ],
        "Natures of a request, code:label (the label is what customers read).",
    )
    departments: list[str] = _setting(  # noqa: RUF009
        [
            "customer_service:Atendimento",
            "billing:Financeiro",
            "technical:Suporte técnico",
            "retention:Cancelamento e retenção",
            "ombudsman:Ouvidoria",
        ],
        "Departments a request can be forwarded to, code:label.",
    )
    # -- notifications (SMS, e-mail, outbox)
    company_name: str = _setting("SAC", "Name customers see in SMS and e-mail.")
    notify_open_sms: bool = _setting(
        True, "SMS the protocol to the caller's mobile when it is opened."
    )
    notify_status_changes: bool = _setting(
        True, "SMS and e-mail the customer at every status change."
    )
    sms_ascii: bool = _setting(
        True, "Strip accents from SMS text (GSM-7: 160 characters per part instead of 70)."
    )
    smtp_host: str = _setting("", "SMTP server for e-mail; empty: no e-mail.")
    smtp_port: int = _setting(587, "SMTP port (587 submission with STARTTLS, 465 TLS).")
    smtp_username: str = _setting("", "SMTP login; empty: no authentication.")
    smtp_password: str = _setting("", "SMTP password (never logged).")
    smtp_from: str = _setting("", "From address, e.g. 'SAC Empresa <sac@empresa.com.br>'.")
    smtp_starttls: bool = _setting(True, "Require STARTTLS (port 587).")
    smtp_tls: bool = _setting(False, "Implicit TLS from the first byte (port 465).")
    smtp_timeout: float = _setting(30.0, "Seconds for one SMTP delivery.")
    sms_provider: str = _setting(
        "", "SMS provider: webhook (generic JSON POST) or zenvia (Zenvia API v2); empty: no SMS."
    )
    sms_url: str = _setting(
        "",
        "SMS endpoint (webhook: required; zenvia: default "
        "https://api.zenvia.com/v2/channels/sms/messages).",
    )
    sms_secret: str = _setting(
        "", "SMS API token: webhook Bearer token, Zenvia X-API-TOKEN (never logged)."
    )
    sms_sender: str = _setting("", "SMS sender id (Zenvia: the account's sender alias).")
    sms_timeout: float = _setting(15.0, "Seconds for one SMS API request.")
    outbox_worker: bool = _setting(
        True, "Send queued notifications from this process (off: another process does)."
    )
    outbox_poll_interval: float = _setting(
        2.0, "Seconds between outbox scans when nothing woke the worker."
    )
    outbox_batch_size: int = _setting(20, "Notifications claimed per scan.")
    outbox_concurrency: int = _setting(4, "Notifications sent at once by one worker.")
    outbox_lease_seconds: float = _setting(
        120.0, "A claimed notification is retried by any worker after this long without a result."
    )
    outbox_max_attempts: int = _setting(8, "Attempts before a notification is marked failed.")
    outbox_backoff_seconds: float = _setting(
        30.0, "Wait after the first failure; doubles at each further failure."
    )
    outbox_backoff_max_seconds: float = _setting(3600.0, "Longest wait between attempts.")
    # -- retention
    recordings_dir: str = _setting(
        "", "Directory of call recordings the retention command purges; empty: none."
    )
    retention_recording_days: int = _setting(
        90, "Recordings older than this are deleted (Decreto 11.034 art. 12 §3: at least 90)."
    )
    retention_record_days: int = _setting(
        730, "Records are anonymised this many days after resolution (art. 12 §5: 2 years)."
    )

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        overrides: dict[str, Any] | None = None,
        checks: Sequence[SettingsCheck] = (),
    ) -> Settings:
        """Build settings from a TOML file, the environment and explicit overrides;
        ``checks`` are the features' own checks (:func:`sac_ivr.features.load_settings`
        passes every feature's)."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        path = config_file or env.get(CONFIG_ENV)
        if path:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from exc
            values.update(_flatten_toml(data))
        for f in dataclasses.fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env:
                values[f.name] = env[key]
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        converted = {name: _convert(known[name], value) for name, value in values.items()}
        settings = cls(**converted)
        settings.validate(checks)
        return settings

    def validate(self, checks: Sequence[SettingsCheck] = ()) -> None:
        """Refuse at start-up what would otherwise fail on the first call: the
        settings every part shares here, then each feature's ``checks``."""
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"timezone: unknown time zone {self.timezone!r}") from exc
        for name in ("agi_port", "http_port", "ami_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name}: {port} is not a TCP port")
        if not self.agi_allowed_peers:
            raise ConfigError("agi_allowed_peers: empty (0.0.0.0/0, ::/0 allows everyone)")
        for cidr in self.agi_allowed_peers:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(f"agi_allowed_peers: {exc}") from None
        for name in (
            "agi_header_timeout",
            "http_header_timeout",
            "http_body_timeout",
            "http_keepalive_timeout",
        ):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(f"{name}: must be more than 0 and at most 3600 seconds")
        for name in ("agi_max_connections", "http_max_connections"):
            if not 1 <= getattr(self, name) <= 1_000_000:
                raise ConfigError(f"{name}: must be between 1 and 1000000")
        if not 1 <= self.http_max_connections_per_client <= self.http_max_connections:
            raise ConfigError(
                "http_max_connections_per_client: must be between 1 and http_max_connections"
            )
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"log_level: {self.log_level!r} is not a log level")
        for check in checks:
            check(self)  # raises ConfigError naming the setting

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
        return f"http://{host}:{self.http_port}"

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked: safe to log."""
        out = dataclasses.asdict(self)
        for key in out:
            if "secret" in key or "password" in key:
                out[key] = "***" if out[key] else ""
        return out


def setting_help() -> list[tuple[str, str, Any]]:
    """(name, help, default) for every setting, in declaration order."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.default_factory() if callable(f.default_factory) else f.default
        rows.append((f.name, f.metadata.get("help", ""), default))
    return rows


def settings_markdown() -> str:
    """The README's configuration table, generated from the fields (a test keeps the
    README equal to it: ``python -m sac_ivr.config > table`` regenerates it)."""
    lines = ["| setting (env `SAC_IVR_…`) | default | meaning |", "|---|---|---|"]
    for name, help_text, default in setting_help():
        if isinstance(default, list):
            shown = ", ".join(str(item) for item in default)
        elif isinstance(default, bool):
            shown = "true" if default else "false"
        else:
            shown = str(default)
        shown = f"`{shown}`" if shown else "(empty)"
        cells = [f"`{name}`", shown, help_text]
        lines.append("| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _flatten_toml(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``[ami] host = "x"`` and ``ami_host = "x"`` mean the same setting."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, dict):
            flat.update(_flatten_toml(value, prefix=f"{name}_"))
        else:
            flat[name] = value
    return flat


def _convert(f: dataclasses.Field[Any], value: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(f"{value!r} is not a yes/no value")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("list"):
            if isinstance(value, str):
                return [item.strip() for item in value.split(",") if item.strip()]
            return list(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{f.name}: {exc}") from exc


if __name__ == "__main__":
    print(settings_markdown(), end="")
