"""Who read customers' personal data (the access log, LGPD art. 37) and how the
public lookup is used (its counters)."""
