"""Real receiving peers for tests, all on loopback or unix sockets: aiosmtpd in-process
(aiosmtpd_server.py; DSN-aware: aiosmtpd_dsn.py; more AUTH mechanisms: aiosmtpd_auth.py),
Postfix smtp-sink and smtpd and Dovecot LMTP and auth as subprocesses (those skip cleanly where
the Debian packages or root are missing), and an independent SCRAM server (scram_server.py)."""
