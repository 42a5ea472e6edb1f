"""Bodies of the lifecycle write API: read, validated, normalised. Every error is a
400 naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import BodyModel, ResponseModel, read_body
from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import Reads
from sac_ivr.http.inputs import check_text, document_param, email_param, phone_param
from sac_ivr.http.inputs import read_object as read_object  # moved; kept importable
from sac_ivr.lifecycle import services, statuses
from sac_ivr.lifecycle.config import LifecycleConfig

MAX_BODY_TEXT = {"customer_name": 128, "notes": 10000, "agent": 64}
NOTE_MAX = 4000
# Free text where line breaks and tabs belong; every other field is one line.
MULTILINE = ("notes", "customer_note", "internal_note")


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body[name]
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string or null", field=name)
    return check_text(value, name, limit, lines=name in MULTILINE) or None


def _code(body: dict[str, Any], name: str, known: set[str]) -> str | None:
    value = _text(body, name, 64)
    if value is not None and value not in known:
        raise bad_request(
            f"{name} {value!r} is not configured; known: {', '.join(sorted(known))}", field=name
        )
    return value


def parse_changes(body: dict[str, Any], config: LifecycleConfig) -> dict[str, Any]:
    """PATCH body -> normalised field values (null clears a field)."""
    return read_body(ProtocolChanges, body, context={"lifecycle": config}).changes()


def parse_transition(body: dict[str, Any], config: LifecycleConfig) -> dict[str, Any]:
    transition = read_body(Transition, body, context={"lifecycle": config})
    return transition.model_dump(exclude_unset=True)


# ------------------------------------------------------------------ declared shapes


def _config(context: dict[str, Any]) -> LifecycleConfig:
    """The configured codes: the running service's, or the ``lifecycle`` given."""
    config = context.get("lifecycle")
    return config if config is not None else services.lifecycle_of(core_of(context["request"]))


def _one_line(limit: int) -> Callable[[Any, str], str | None]:
    def read(value: Any, name: str) -> str | None:
        return _text({name: value}, name, limit)

    return read


def _subject(value: Any, name: str, context: dict[str, Any]) -> str | None:
    return _code({name: value}, name, _config(context).subject_codes())


def _department(value: Any, name: str, context: dict[str, Any]) -> str | None:
    return _code({name: value}, name, _config(context).department_codes())


def _document(value: Any, name: str) -> str | None:
    return document_param(_text({name: value}, name, 40), field=name)


def _email(value: Any, name: str) -> str | None:
    raw = _text({name: value}, name, 254)
    return email_param(raw, field=name) if raw is not None else None


def _phone(value: Any, name: str) -> str | None:
    return phone_param(_text({name: value}, name, 40), field=name)


def _nullable(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": ["string", "null"], **(extra or {})}


class ProtocolChanges(BodyModel):
    """Any of these fields; null clears one. Unknown fields are refused."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    subject: Annotated[
        str | None,
        Reads(
            _subject,
            _nullable(
                {
                    "description": "A configured subject code (GET /api/v1/lifecycle). Changing "
                    "it recomputes the due date (e.g. ANS high complexity); 'cancellation' "
                    "registers the cancellation as effective now and sends the receipt."
                }
            ),
            with_context=True,
            json=True,
        ),
    ] = None
    customer_document: Annotated[
        str | None,
        Reads(_document, _nullable({"description": "CPF or CNPJ, verified."}), json=True),
    ] = None
    customer_name: Annotated[
        str | None,
        Reads(_one_line(MAX_BODY_TEXT["customer_name"]), _nullable({"maxLength": 128}), json=True),
    ] = None
    customer_email: Annotated[
        str | None, Reads(_email, _nullable({"format": "email"}), json=True)
    ] = None
    customer_phone: Annotated[
        str | None,
        Reads(
            _phone,
            _nullable({"description": "Any Brazilian format; stored in E.164. SMS go to it."}),
            json=True,
        ),
    ] = None
    notes: Annotated[
        str | None,
        Reads(_one_line(MAX_BODY_TEXT["notes"]), _nullable({"maxLength": 10000}), json=True),
    ] = None
    department: Annotated[
        str | None,
        Reads(
            _department,
            _nullable({"description": "A configured department code."}),
            with_context=True,
            json=True,
        ),
    ] = None
    agent: Annotated[
        str | None,
        Reads(_one_line(MAX_BODY_TEXT["agent"]), _nullable({"maxLength": 64}), json=True),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _something_to_change(cls, data: Any) -> Any:
        if not data:
            raise bad_request(
                f"nothing to change; fields: {', '.join(services.EDITABLE_FIELDS)}", field="body"
            )
        return data

    def changes(self) -> dict[str, Any]:
        """The fields the body named, normalised (None clears a field)."""
        return self.model_dump(exclude_unset=True)


def _to_status(value: Any, name: str) -> str:
    if not isinstance(value, str) or value not in statuses.BY_CODE:
        raise bad_request(
            f"to_status must be one of {', '.join(statuses.BY_CODE)}", field="to_status"
        )
    return value


def _note(value: Any, name: str) -> str | None:
    return _text({name: value}, name, NOTE_MAX)


class Transition(BodyModel):
    REQUIRED = ("to_status",)

    to_status: Annotated[str, Reads(_to_status, {"enum": list(statuses.BY_CODE)}, json=True)]
    department: Annotated[
        str | None,
        Reads(
            _department,
            _nullable({"description": "Required when to_status is forwarded."}),
            with_context=True,
            json=True,
        ),
    ] = None
    customer_note: Annotated[
        str | None,
        Reads(
            _note,
            _nullable(
                {
                    "maxLength": NOTE_MAX,
                    "description": "Told to the customer (SMS, e-mail, history of demands).",
                }
            ),
            json=True,
        ),
    ] = None
    internal_note: Annotated[
        str | None,
        Reads(_note, _nullable({"maxLength": NOTE_MAX, "description": "Agents only."}), json=True),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _status_first(cls, data: Any) -> Any:
        if isinstance(data, dict) and "to_status" not in data:
            raise bad_request("to_status is required", field="to_status")
        return data

    @model_validator(mode="after")
    def _forwarded_somewhere(self) -> Transition:
        if self.to_status == "forwarded" and not self.department:
            raise bad_request("forwarding needs the department it goes to", field="department")
        return self


class StatusInfo(ResponseModel):
    code: str
    label_pt: str
    final: bool


class Choice(ResponseModel):
    code: str
    label_pt: str


class Lifecycle(ResponseModel):
    statuses: list[StatusInfo]
    transitions: dict[str, list[str]]
    subjects: list[Choice]
    departments: list[Choice]
    profile: dict[str, Any] = Field(
        description="The legal profile: code, title, reply/history deadlines "
        "(7d calendar days, 5bd business days, 72h hours), extended_reply and "
        "extended_subjects, answered_statuses (the clock stops there), holidays."
    )
