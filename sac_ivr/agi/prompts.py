"""Prompt names the AGI routes play (files under sounds/pt_BR/, no extension).

The texts are in sounds/manifest.toml; a test checks every name used here and in
dialplan/ exists there in every format.
"""

PROTOCOL_INTRO = "sac/protocol-intro"  # "Seu número de protocolo é"
PROTOCOL_OUTRO = "sac/protocol-outro"  # "Anote este número…"
PROTOCOL_REPEAT_OFFER = "sac/protocol-repeat-offer"  # "Para ouvir novamente, tecle 1."
PROTOCOL_SMS_OFFER = "sac/protocol-sms-offer"  # "Para receber este protocolo por SMS, tecle 2."
PROTOCOL_SMS_SENT = "sac/protocol-sms-sent"  # "Você vai receber o protocolo por SMS."
PAUSE = "sac/pause"  # short silence between digit groups

DIGITS = tuple(f"digits/{d}" for d in "0123456789")


def digit(d: str) -> str:
    return f"digits/{d}"
