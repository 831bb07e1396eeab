"""Whether a domain is this machine's own, as Postfix's resolve_local() and the ``user`` keys
of the address search order (generic(5)) ask.

A domain is local when it is $myorigin, a $mydestination entry (a name, or a table in which
the domain is found) or ``[address]`` of an explicit $inet_interfaces or $proxy_interfaces
address. ``inet_interfaces = all`` matches no literal here: selfaddr.py knows the machine's
addresses for the mail-loop check. Used by delivery/generic.py, which asks
`is_local_domain_async` first when a $mydestination table asks a server (pgsql:, ...), so
that the event loop never waits for it.
"""

from __future__ import annotations

from mailcarrier.config.settings import Settings
from mailcarrier.tables import open_maps

__all__ = ["is_local_domain", "is_local_domain_async"]


def _plain_answer(settings: Settings, name: str) -> bool | None:
    """The answer without the $mydestination tables: True or False, or None (ask them)."""
    main = settings.params
    if name == main.myorigin.lower():
        return True
    if name.startswith("[") and name.endswith("]"):
        literal = name[1:-1].removeprefix("ipv6:")
        interfaces = (*main.inet_interfaces, *main.proxy_interfaces)
        return literal in {item.lower() for item in interfaces}
    return None


def _is_table(item: str) -> bool:
    return ":" in item and not item.startswith("[")


def is_local_domain(settings: Settings, domain: str) -> bool:
    """Whether `domain` (a name or an address literal) is this machine's."""
    name = domain.strip().rstrip(".").lower()
    plain = _plain_answer(settings, name)
    if plain is not None:
        return plain
    for item in settings.params.mydestination:
        if _is_table(item):
            if open_maps([item], settings.config_dir).find(name) is not None:
                return True
        elif item.lower() == name:
            return True
    return False


async def is_local_domain_async(settings: Settings, domain: str) -> bool:
    """`is_local_domain`, with tables that ask a server asked on the event loop."""
    name = domain.strip().rstrip(".").lower()
    plain = _plain_answer(settings, name)
    if plain is not None:
        return plain
    for item in settings.params.mydestination:
        if _is_table(item):
            if await open_maps([item], settings.config_dir).find_async(name) is not None:
                return True
        elif item.lower() == name:
            return True
    return False
