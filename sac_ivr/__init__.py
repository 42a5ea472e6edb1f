"""sac-ivr: a Brazilian SAC (customer service line) on Asterisk.

Issues a protocol number for every call, reads it to the caller in pt-BR before any
menu (Decreto 6.523/2008 art. 15; Decreto 11.034/2022 art. 12), follows the call over
AMI and serves the agents, the customers and the supervisors over HTTP.
"""

__version__ = "0.1.0"
