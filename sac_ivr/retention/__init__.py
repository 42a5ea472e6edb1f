"""Retention: purge old call recordings, anonymise old resolved records."""
