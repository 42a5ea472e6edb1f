"""Everything that talks to Asterisk, and the only package that imports panoramisk.

panoramisk 1.4's known failures (see the README, "panoramisk") are contained here,
each by a named override of a panoramisk class: fastagi.py for FastAGI (tests in
tests/test_panoramisk_fixes.py), ami.py for AMI, on panoramisk's Manager,
AMIProtocol, Message and Action (tests in tests/test_panoramisk_fixes_ami.py; what
is still ours there, and why, is in its docstring).
"""
