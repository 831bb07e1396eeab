"""Real-world MIME structures for the 8bit->7bit conversion tests (content and delivery).

Each entry is a message as a mail client or list server writes it, with 8-bit text parts
declared ``Content-Transfer-Encoding: 8bit`` and ASCII headers. `decoded_texts` is what a
reader sees: every leaf part's content type and decoded payload, in order.
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
from email.message import EmailMessage

GERMAN = "Grüße aus Köln: Straße, Größe, Übermaß = 100 %"
JAPANESE = "日本語のテキスト。メールの本文です。"
LONG_8BIT = "é" * 300 + " trailing space "

SIMPLE_8BIT = f"""\
From: Jörg <a@example.org>
To: b@example.net
Subject: plain 8bit
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{GERMAN}
.leading dot line
{LONG_8BIT}
tab at end\t
""".replace("Jörg", "Joerg")

NESTED = f"""\
From: a@example.org
To: b@example.net
Subject: nested multiparts
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_outer_0001"

This is a multi-part message in MIME format.

--=_outer_0001
Content-Type: multipart/alternative;
 boundary="=_alt_0002"

--=_alt_0002
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

{GERMAN}
{JAPANESE}

--=_alt_0002
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: 8bit

<html><body><p>{GERMAN}</p><p>{JAPANESE}</p></body></html>

--=_alt_0002--

--=_outer_0001
Content-Type: application/pdf; name="x.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="x.pdf"

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k
ZT4+CnN0cmVhbQp4nCvkMlAwUDA0VDBQsFUoSk3OT0nVSy0uSS1RMIQJJOfmlwAA

--=_outer_0001
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

already encoded: Gr=FC=DFe

--=_outer_0001
Content-Type: message/rfc822

From: c@example.com
To: d@example.com
Subject: forwarded
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

forwarded text: {GERMAN}

--=_outer_0001--
epilogue
"""

DIGEST = f"""\
From: list@example.org
To: b@example.net
Subject: digest
MIME-Version: 1.0
Content-Type: multipart/digest; boundary="dig"
Content-Transfer-Encoding: 8bit

--dig

From: x@example.org
Subject: one
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{GERMAN}

--dig

From: y@example.org
Subject: two

plain ascii
--dig--
"""

# A boundary parameter that the body never uses exactly (a prefix of it is used), a missing
# closing boundary, and a boundary longer than a small limit.
MALFORMED = f"""\
From: a@example.org
To: b@example.net
Subject: malformed
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{GERMAN}
--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: binary

{JAPANESE}
"""

# Mostly already encoded: base64 and quoted-printable text parts (left byte for byte), a
# 7bit part, and one 8bit part between them; a nested message/rfc822 whose own body is 8bit.
ENCODED = f"""\
From: a@example.org
To: b@example.net
Subject: already encoded
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="enc"

--enc
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

{base64.encodebytes(GERMAN.encode()).decode().strip()}
--enc
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

{quopri.encodestring(f"<p>{JAPANESE}</p>".encode()).decode().strip()}
--enc
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

plain seven bit
--enc
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{JAPANESE}
--enc
Content-Type: message/rfc822

From: c@example.com
Subject: inner
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{GERMAN}
--enc--
"""

CORPUS = {
    "simple": SIMPLE_8BIT,
    "nested": NESTED,
    "digest": DIGEST,
    "malformed": MALFORMED,
    "encoded": ENCODED,
}


def deep(levels: int) -> str:
    """A message of `levels` nested multiparts with an 8bit leaf."""
    head = [
        "From: a@example.org",
        "To: b@example.net",
        "Subject: deep",
        "MIME-Version: 1.0",
    ]
    body: list[str] = []
    for n in range(levels):
        block = [f'Content-Type: multipart/mixed; boundary="lvl{n}"', "", f"--lvl{n}"]
        (head if n == 0 else body).extend(block)
    body += [
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        GERMAN,
    ]
    body += [f"--lvl{n}--" for n in reversed(range(levels))]
    return "\n".join([*head, *body]) + "\n"


# Deep, but within the default mime_nesting_limit (100): converted, not refused.
CORPUS["deep"] = deep(30)


def decoded_texts(raw: bytes) -> list[tuple[str, str | bytes]]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out: list[tuple[str, str | bytes]] = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_type() == "message/rfc822":
            continue
        assert isinstance(part, EmailMessage)
        if part.get_content_maintype() == "text":
            out.append((part.get_content_type(), part.get_content().rstrip("\n")))
        else:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out.append((part.get_content_type(), payload))
    return out
