"""Everything that talks to Asterisk. It imports nothing else from sac-ivr's features.

* ``wire.py``: the AMI wire format (framing, parsing, action encoding), our own;
* ``link.py``: one self-healing AMI connection (login, capped backoff, checked ping,
  timed actions, no re-send after a reconnect);
* ``ami.py``: :class:`~sac_ivr.asterisk.ami.AmiClient`, the facade the rest of the
  code uses (subscribers, connect and link callbacks, actions);
* ``fastagi.py``: the FastAGI server, the only module importing panoramisk, whose
  FastAGI failures it contains by named overrides (tests in
  tests/test_panoramisk_fixes.py). What the dialplan expects (e.g. the variable set
  on a route's failure) is passed in by ``sac_ivr.agi.server``.

panoramisk 1.4's AMI failures (see the README, "panoramisk") are avoided by not
using its AMI side at all; each has a test in tests/test_panoramisk_fixes_ami.py.
"""
