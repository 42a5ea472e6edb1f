"""Everything that talks to Asterisk, and the only package that imports panoramisk.

panoramisk 1.4's known failures (see the README, "panoramisk") are contained here:
fastagi.py fixes the FastAGI side (tests in tests/test_panoramisk_fixes.py); ami.py
speaks AMI itself instead of using panoramisk's Manager (why: its docstring; tests in
tests/test_panoramisk_fixes_ami.py).
"""
