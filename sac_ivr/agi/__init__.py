"""FastAGI: what Asterisk asks of sac-ivr during a call. One module per route in routes/."""
