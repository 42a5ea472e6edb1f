"""Everything that talks to Asterisk, and the only package that imports panoramisk.

panoramisk 1.4's known failures (see the README, "panoramisk") are contained here:
fastagi.py fixes the FastAGI side, ami.py the AMI side; each fix has a test in
tests/test_panoramisk_fixes.py.
"""
