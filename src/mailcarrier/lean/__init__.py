"""The lean submission path: ``mailcarrier sendmail`` of an ordinary message, started fast.

A submission that loads the whole package (argparse, logging, email, dataclasses, the
parameter table of config/) spends almost all of its time importing. The console scripts
(entry.py) first offer the command line to this package, which imports nothing of
mailcarrier outside it (genparams.py, which writes paramtable.py, is not imported at run
time) and only what Python has loaded at start (os, sys, io, time) plus pwd and _socket:

- options.py parses the sendmail command lines it knows (``-t``, ``-i``, ``-oi``, ``-f``,
  ``-r``, ``-F``, ``-bm``, ``-C``, ``-c``, ``-v``, recipients), as argparse would;
- mainconf.py reads main.cf when it can vouch for every setting: what a submission uses,
  with the values the general path accepts (no ``$`` expressions but $myhostname and
  $mydomain in myorigin, no event_log_file), and any other parameter checked against
  paramtable.py (generated from config/ by genparams.py) as config/convert.py checks it;
  no master.cf;
- message.py checks addresses and reads the header section as queue/submit.py does, and
  renders the Date: header and the envelope of the queue file as email.utils and
  queue/qfile.py do;
- spool.py makes queue IDs and the queue directories as queue/ does, and writes the queue
  file as queue/writers.py does (dot-file, fsync, rename, fsync of the directory, the same
  crash points);
- body.py copies the body up to a lone dot (queue/submit.py uses it too);
- submit.py runs the submission and says what to do; maillog.py writes its two lines to
  maillog_file in Postfix's format, as loghandlers.py does.

Whatever it does not know (another option, a setting it cannot vouch for, a UTF-8 header, an address
with quotes, anything that would be an error) it hands back untouched, before anything is
queued: the general path (cli.py) then runs as if the lean path did not exist, with the
bytes read so far put back in front of standard input. The two errors it reports itself,
once the body is being copied, are the general path's own lines: a message over
message_size_limit and a queue file that cannot be written. tests/lean/ holds the lean path
to the general one (same queue file bytes, same exit codes and lines) with hypothesis.
"""
