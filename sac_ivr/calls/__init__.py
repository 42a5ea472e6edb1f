"""Calls: the call log (one row per linkedid), live call/queue state, and their API."""
