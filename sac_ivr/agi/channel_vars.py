"""Names shared with the dialplan (dialplan/extensions_sac.conf). Change both together."""

# Set by the ``protocol`` route right after the number is committed, before the first
# prompt; empty when no number could be issued (the dialplan then tells the caller an
# attendant will give it and goes on to the menu).
PROTOCOL = "SAC_PROTOCOL"
# Set by the ``protocol`` route: "1" when the caller asked for the number by SMS.
SMS_REQUESTED = "SAC_SMS_REQUESTED"
# Set by the dialplan when the caller picks a menu option; passed to ``subject``.
SUBJECT = "SAC_SUBJECT"
# Set by every route: "OK" or "ERROR" (AGISTATUS only says whether AGI itself ran).
# The protocol route sets "OK" only after the whole reading: a number without "OK"
# was cut short, and the dialplan reads it itself. Neither SAC_PROTOCOL nor
# SAC_RESULT after the protocol route: sac-ivr died before telling its outcome, and
# the dialplan calls the route again once, with RETRY as its second argument.
RESULT = "SAC_RESULT"
# Second argument of the ``protocol`` route on the dialplan's retry: read the number
# already issued to this call (same linkedid, uniqueid, channel) if there is one.
RETRY = "retry"
