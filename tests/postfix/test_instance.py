"""tests/support/postfix.py proves itself with Postfix's own smtp(8) as the transport: a
message flows smtpd -> qmgr -> smtp -> smtp-sink and the sink's dump holds it; a 4xx next
hop leaves it deferred with the reason in ``postqueue -j``; a 5xx makes Postfix's bounce
daemon return it to the sender. Then a Python program built on postfix/master.py runs as a
master.cf service (tests/support/postfix_agent.py): started by a real master(8) with a
relative command path, privileges dropped to mail_owner, ``$service_name`` expanded, its
lines in the instance's log through postlogd, and a new process after ``postfix reload``.

One instance for the module (the fixture in conftest.py); the next hops are three sinks
chosen by recipient domain (transport_maps), and relayhost is the accepting one, so that
bounces reach a sink too.
"""

from __future__ import annotations

import pwd
import re
import socket
from pathlib import Path

import pytest

from tests.support.peers.postfix_sink import SmtpSink
from tests.support.postfix import PostfixInstance

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def sinks(postfix_instance: PostfixInstance) -> dict[str, SmtpSink]:
    dump = postfix_instance.root / "sink" / "%H%M%S."
    found = {
        "ok": postfix_instance.sink("-d", str(dump)),
        "soft": postfix_instance.sink("-r", "RCPT"),
        "hard": postfix_instance.sink("-f", "RCPT"),
    }
    routes = ", ".join(f"{name}.test=smtp:{sink.nexthop}" for name, sink in found.items())
    postfix_instance.set_main(
        {"transport_maps": f"inline:{{{routes}}}", "relayhost": found["ok"].nexthop}
    )
    return found


def _message(subject: str) -> bytes:
    return f"From: a@test.local\r\nTo: b@ok.test\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


def _dumps(directory: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(directory.glob("*"))]


def test_a_message_reaches_the_sink(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    mark = postfix_instance.log_mark()
    queue_id = postfix_instance.submit("a@test.local", ["b@ok.test"], _message("flows"))
    line = postfix_instance.wait_log(rf"postfix/smtp\[\d+\]: {queue_id}: to=<b@ok\.test>.*", mark)
    assert f"relay=127.0.0.1[127.0.0.1]:{sinks['ok'].port}," in line.group()
    assert "dsn=2.0.0, status=sent (250 2.0.0 Ok" in line.group()
    postfix_instance.wait_log(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", mark)
    postfix_instance.wait_empty()
    # smtp-sink dumps with LF line ends, its envelope first.
    (dump,) = [d for d in _dumps(postfix_instance.root / "sink") if b"Subject: flows\n" in d]
    assert dump.startswith(b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\n")
    assert (
        b"\nX-Mail-Args: <a@test.local>\nX-Rcpt-Args: <b@ok.test> ORCPT=rfc822;b@ok.test\n" in dump
    )
    assert dump.endswith(b"\n\nhello\n\n")


def test_batched_changes_reload_once_and_a_batch_is_one_session(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    instance = postfix_instance
    reloads = instance.log.count("]: reload -- version ")
    with instance.changes():
        instance.set_main({"queue_run_delay": "2s"})
        instance.set_main({"queue_run_delay": None})
    assert instance.log.count("]: reload -- version ") == reloads + 1
    mark = instance.log_mark()
    ids = instance.submit_batch(
        "a@test.local", [(["b@ok.test"], _message(f"b{i}")) for i in range(3)]
    )
    assert len(set(ids)) == 3
    for queue_id in ids:
        instance.wait_log(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", mark)
    assert len(re.findall(r"postfix/smtpd\[\d+\]: connect from", instance.log[mark:])) == 1


def test_sendmail_c_goes_the_same_way(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    mark = postfix_instance.log_mark()
    postfix_instance.sendmail("a@test.local", ["c@ok.test"], b"Subject: picked up\n\nhi\n")
    postfix_instance.wait_log(r"postfix/smtp\[\d+\]: \w+: to=<c@ok\.test>.*status=sent", mark)
    postfix_instance.wait_empty()


def test_a_4xx_next_hop_defers(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    queue_id = postfix_instance.submit("a@test.local", ["d@soft.test"], _message("later"))
    entry = postfix_instance.wait_deferred(queue_id)
    (recipient,) = entry["recipients"]
    assert recipient["address"] == "d@soft.test"
    assert recipient["delay_reason"] == (
        "host 127.0.0.1[127.0.0.1] said: 450 4.3.0 Error: command failed "
        "(in reply to RCPT TO command)"
    )


def test_a_5xx_next_hop_bounces_to_the_sender(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    mark = postfix_instance.log_mark()
    queue_id = postfix_instance.submit("e@test.local", ["f@hard.test"], _message("never"))
    postfix_instance.wait_log(
        rf"{queue_id}: to=<f@hard\.test>.*dsn=5\.\d\.\d, status=bounced", mark
    )
    notice = postfix_instance.wait_log(
        rf"postfix/bounce\[\d+\]: {queue_id}: sender non-delivery notification: (\w+)", mark
    )
    postfix_instance.wait_log(
        rf"{notice.group(1)}: to=<e@test\.local>.*relay=127\.0\.0\.1.*status=sent", mark
    )


# --- a mailcarrier program as a master.cf service ----------------------------------------------
def _greeting(instance: PostfixInstance, service: str) -> list[str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(instance.spool / "private" / service))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().split()


def test_a_master_child_built_on_master_py(postfix_instance: PostfixInstance) -> None:
    instance = postfix_instance
    command = instance.program("smtp", "tests.support.postfix_agent:main")
    assert command.startswith("../")
    mark = instance.log_mark()
    instance.set_service("greeter", command, "-o", "{ syslog_name = postfix/$service_name }")
    service, personality, syslog_name, generation, uid, pid = _greeting(instance, "greeter")
    assert (service, personality, syslog_name) == ("greeter", "smtp", "postfix/greeter")
    assert int(uid) == pwd.getpwnam("postfix").pw_uid
    instance.wait_log(rf"postfix/greeter/smtp\[{pid}\]: greeted a client of greeter", mark)
    # postfix reload: the child sees EOF on fd 5 and exits; the next one is a new process.
    instance.reload()
    instance.wait_log(rf"postfix/greeter/smtp\[{pid}\]: exiting: master disconnect", mark)
    *_, new_generation, _, new_pid = _greeting(instance, "greeter")
    assert new_pid != pid and int(new_generation) > int(generation)
    log = instance.log[mark:]
    for trouble in ("bad command startup", "partial status", "ignoring status", "fatal:"):
        assert trouble not in log
