"""The TLS client's pure parts: security levels, policy resolution, certificate judgement.

levels.py (what a level promises), policy.py (which policy applies to a next hop),
context.py (ssl contexts, trust anchors, the session cache), names.py (RFC 6125 name
matching), verify.py (chain trust, fingerprints), dane.py (RFC 7672 TLSA matching) and
tlslog.py (Postfix's log lines). No I/O but reading configured files: the STARTTLS
exchange is transport/session.py's, the decisions delivery/tls_step.py's.
"""
