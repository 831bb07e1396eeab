"""The shared test harness: what more than one test package needs, in one place.

- settings.py   `make_settings(*layers, **params)`, the one way tests build a `Settings`, and
                the layers several packages share (client names, a private queue, loopback DNS)
- deliver.py    `deliver_to(peer, body, **params)`: one delivery through the public API with
                its log; `request_to`, `deliver_request`, `caching_agent`, `deliver_via`
- clock.py      `FakeClock`, the one fake clock
- scripted.py   `ScriptedServer` and its steps (`Send`, `Expect`, ...): faults no real server
                produces; wire.py: the bytes of a standard session those scripts use
- peers/        real servers: aiosmtpd (plain, DSN-aware, with more AUTH mechanisms), Postfix
                smtp-sink and smtpd, Dovecot LMTP and auth, an independent SCRAM server
- tls.py        certificates, DANE records, TLS settings and one TLS delivery;
                tls_server.py: the scripted STARTTLS server
- dns.py        the loopback DNS server and its zones
- golden.py     golden files (`.in` -> `.ref`); corpus.py: real-world MIME messages
- postfix_records.py  Postfix queue files written record by record (`record`,
                `QueueFileBuilder`, `cleanup_file`) for the postfix/ tests
- test_scripted.py  the scripted server's own tests (a test of the test tool)

Conventions: a helper used by one test package stays in that package, as `helpers.py`, and its
fixtures in the package's `conftest.py`; the fixtures of shared things are in tests/conftest.py.
Nothing here asserts what a test checks: the assertions stay in the tests.
"""
