"""Real receiving peers for tests: aiosmtpd in-process, Postfix smtp-sink as a subprocess."""
