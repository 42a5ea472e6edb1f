"""Names shared with the dialplan (dialplan/extensions_sac.conf). Change both together."""

# Set by the ``protocol`` route; empty when no number could be issued (the dialplan
# then tells the caller an attendant will give it and goes on to the menu).
PROTOCOL = "SAC_PROTOCOL"
# Set by the ``protocol`` route: "1" when the caller asked for the number by SMS.
SMS_REQUESTED = "SAC_SMS_REQUESTED"
# Set by the dialplan when the caller picks a menu option; passed to ``subject``.
SUBJECT = "SAC_SUBJECT"
# Set by every route: "OK" or "ERROR" (AGISTATUS only says whether AGI itself ran).
# The protocol route sets SAC_PROTOCOL after the intro and "OK" only after the whole
# reading: a number without "OK" was cut short, and the dialplan reads it itself.
RESULT = "SAC_RESULT"
