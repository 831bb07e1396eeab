"""mailcarrier: the Postfix SMTP+LMTP delivery client, and the mail system around it, in Python.

    import mailcarrier
    config = mailcarrier.Config.load("/etc/mailcarrier")      # or Config.defaults()
    result = await mailcarrier.deliver(request, config=config)  # -> DeliveryResult
    queue_id = await mailcarrier.submit(b"...", sender="a@example.org",
                                        recipients=["b@example.net"], config=config)
    result = await mailcarrier.send(message, host="[smtp.example.org]:587",
                                    username="me", password="secret")  # one call

See README.md for the command line (`mailcarrier deliver|sendmail|run|queue|conf`).

The names below are loaded when first used (PEP 562), not when the package is: a program that
imports one part of it (the Postfix-native agent imports `mailcarrier.postfix.main`) does not
pay for the API's queue, spool and notice modules it never calls, and importing the package
loads neither logging nor typing (the ``mailcarrier`` logger gets its NullHandler from log.py,
which every Postfix line goes through).
"""

from __future__ import annotations

from mailcarrier.lazy import lazy_names

# typing is not imported at run time: the lean ``sendmail`` path (entry.py, lean/) starts
# with this module and nothing else.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from mailcarrier.api import Config, deliver, deliver_sync, make_request, submit, submit_sync
    from mailcarrier.delivery.request import DeliveryRequest, Recipient
    from mailcarrier.errors import (
        ConfigError,
        DataError,
        LocalProtocolError,
        MailcarrierError,
        MessageTooBigError,
        ProtocolError,
        RemoteProtocolError,
        TemporaryError,
        TransportError,
        UsageError,
    )
    from mailcarrier.notify import Notify
    from mailcarrier.sending import send, send_sync
    from mailcarrier.status import DeliveryResult, DeliveryStatus, RecipientStatus

# Where each public name lives (module, relative to the package).
_HOMES: dict[str, tuple[str, ...]] = {
    "api": (
        "Config",
        "deliver",
        "deliver_sync",
        "make_request",
        "submit",
        "submit_sync",
    ),
    "delivery.request": ("DeliveryRequest", "Recipient"),
    "notify": ("Notify",),
    "sending": ("send", "send_sync"),
    "errors": (
        "ConfigError",
        "DataError",
        "LocalProtocolError",
        "MailcarrierError",
        "MessageTooBigError",
        "ProtocolError",
        "RemoteProtocolError",
        "TemporaryError",
        "TransportError",
        "UsageError",
    ),
    "status": ("DeliveryResult", "DeliveryStatus", "RecipientStatus"),
}

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "DeliveryRequest",
    "DeliveryResult",
    "DeliveryStatus",
    "LocalProtocolError",
    "MailcarrierError",
    "MessageTooBigError",
    "Notify",
    "ProtocolError",
    "Recipient",
    "RecipientStatus",
    "RemoteProtocolError",
    "TemporaryError",
    "TransportError",
    "UsageError",
    "deliver",
    "deliver_sync",
    "make_request",
    "send",
    "send_sync",
    "submit",
    "submit_sync",
]

__version__ = "0.1.0"


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
