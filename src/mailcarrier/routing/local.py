"""Whether a domain is this machine's own, as Postfix's resolve_local() and the ``user`` keys
of the address search order (generic(5)) ask.

A domain is local when it is $myorigin, a $mydestination entry (a name, or a table in which
the domain is found) or ``[address]`` of an explicit $inet_interfaces or $proxy_interfaces
address. ``inet_interfaces = all`` matches no literal here: selfaddr.py knows the machine's
addresses for the mail-loop check. Used by delivery/generic.py.
"""

from __future__ import annotations

from mailcarrier.config.settings import Settings
from mailcarrier.tables import open_maps

__all__ = ["is_local_domain"]


def is_local_domain(settings: Settings, domain: str) -> bool:
    """Whether `domain` (a name or an address literal) is this machine's."""
    main = settings.params
    name = domain.strip().rstrip(".").lower()
    if name == main.myorigin.lower():
        return True
    if name.startswith("[") and name.endswith("]"):
        literal = name[1:-1].removeprefix("ipv6:")
        interfaces = (*main.inet_interfaces, *main.proxy_interfaces)
        return literal in {item.lower() for item in interfaces}
    for item in main.mydestination:
        if ":" in item and not item.startswith("["):
            if open_maps([item], settings.config_dir).find(name) is not None:
                return True
        elif item.lower() == name:
            return True
    return False
