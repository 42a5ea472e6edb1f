"""Calls: the call log (one row per Asterisk server and linkedid), live call/queue
state, and their API."""
