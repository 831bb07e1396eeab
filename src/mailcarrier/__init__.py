"""mailcarrier: the Postfix SMTP+LMTP delivery client, and the mail system around it, in Python.

    import mailcarrier
    config = mailcarrier.Config.load("/etc/mailcarrier")      # or Config.defaults()
    result = await mailcarrier.deliver(request, config=config)  # -> DeliveryResult
    queue_id = await mailcarrier.submit(b"...", sender="a@example.org",
                                        recipients=["b@example.net"], config=config)

See README.md for the command line (`mailcarrier deliver|sendmail|run|queue|conf`).
"""

from __future__ import annotations

from mailcarrier.api import Config, deliver, deliver_sync, make_request, submit, submit_sync
from mailcarrier.delivery.request import DeliveryRequest, Notify, Recipient
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
from mailcarrier.status import DeliveryResult, DeliveryStatus, RecipientStatus

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
    "submit",
    "submit_sync",
]

__version__ = "0.1.0"
