"""SASL for the SMTP/LMTP client (RFC 4954), built in: no Cyrus or Dovecot library is used.

mechanism.py and scram.py are the mechanisms (pure: bytes in, bytes out); policy.py picks one
from the server's AUTH list with smtp_sasl_mechanism_filter and the security options;
passwords.py looks credentials up in smtp_sasl_password_maps; authcache.py is the 535
failure cache. The AUTH exchange on the wire is transport/session.py's `Session.authenticate`,
and the decision to authenticate (and what a failure means) is delivery/auth_step.py's.
"""
