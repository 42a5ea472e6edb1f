"""A protocol-faithful fake Asterisk: speaks FastAGI (and AMI) on real sockets."""
