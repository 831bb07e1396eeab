"""REQUIRETLS (RFC 8689) policy: how a message that asked for it is enforced per next hop.

A message submitted with REQUIRETLS (`DeliveryRequest.requiretls`) is delivered under one of
the actions of Postfix 3.11's ``smtp_requiretls_policy`` (``lmtp_requiretls_policy``), looked
up by the TLS next-hop domain: ``enforce`` (STARTTLS, a verified and matched certificate, a
securely found server, REQUIRETLS announced after STARTTLS: otherwise the message bounces with
5.7.30 once no other server is left), ``opportunistic+starttls`` (STARTTLS required, the rest
used when available), ``opportunistic`` (everything used when available, nothing required),
``disable`` (delivered as if REQUIRETLS had not been asked). The parameter is a list of
actions and ``type:table`` lookups; the first action found wins, as in Postfix: a fixed-string
table is also asked for the parent domains (``.example.com``), a pattern table (cidr:,
regexp:, ...) only for the domain itself. `requiretls_action()` decides; a table that cannot
answer or answers nonsense is a configuration problem (`RequireTlsDecision.error`: Postfix's
4.7.10 "REQUIRETLS policy configuration error" deferral).

`mx_authenticated()` is RFC 8689 section 4.2.1's first requirement: the server's name was found
securely, by a DNSSEC-validated MX (or SRV) RRset, or by MTA-STS. The MTA-STS branch is the
`TlsPolicy.mx_authenticated_by_sts` flag (tls/policy.py), which stays False until MTA-STS
resolves policies. A name that no MX record gave (a ``[host]`` next hop, a relay host, a
domain without MX: routing's `mx_dnssec_valid` None) is the configured or addressed name
itself, so it needs no DNS authentication.

Pure apart from opening the tables (once per configuration); the checks that use the decision
are delivery/requiretls_step.py's, the per-message TLS policy tls/policy.py's
(`resolve_not_required` for "TLS-Required: No").
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.maps import Maps
from mailcarrier.tables.registry import open_table
from mailcarrier.tables.text import split_braced
from mailcarrier.tls.policy import TlsPolicy, nexthop_domain

__all__ = [
    "RequireTlsAction",
    "RequireTlsDecision",
    "mx_authenticated",
    "parse_action",
    "requiretls_action",
]


class RequireTlsAction(enum.IntEnum):
    """Postfix's SMTP_REQTLS_POLICY_ACT_*, weakest first."""

    DISABLE = 0
    OPPORTUNISTIC = 1
    OPPORTUNISTIC_STARTTLS = 2
    ENFORCE = 3

    @property
    def requires_tls(self) -> bool:
        """STARTTLS is required (Postfix's TLS_REQUIRED_BY_REQTLS_POLICY)."""
        return self >= RequireTlsAction.OPPORTUNISTIC_STARTTLS


_ACTIONS = {
    "disable": RequireTlsAction.DISABLE,
    "opportunistic": RequireTlsAction.OPPORTUNISTIC,
    "opportunistic+starttls": RequireTlsAction.OPPORTUNISTIC_STARTTLS,
    "enforce": RequireTlsAction.ENFORCE,
}


def parse_action(word: str) -> RequireTlsAction | None:
    return _ACTIONS.get(word.strip().lower())


@dataclass(frozen=True, slots=True)
class RequireTlsDecision:
    """The action for one next hop; `error` (with `warning` to log) when none could be
    decided, in which case the delivery is deferred."""

    action: RequireTlsAction
    error: str = ""
    warning: str = ""


# The message did not ask for REQUIRETLS, or requiretls_enable is off.
NOT_REQUESTED = RequireTlsDecision(RequireTlsAction.DISABLE)


@functools.lru_cache(maxsize=64)
def _items(settings: Settings, transport: str) -> tuple[RequireTlsAction | Maps, ...] | str:
    """The parameter's items (an action, or a table as a one-table Maps), or why not."""
    agent = AgentSettings(settings, transport)
    name = agent.name("requiretls_policy")
    value = settings.value(name)
    assert isinstance(value, str)
    try:
        words = split_braced(value)
    except ValueError as exc:
        return f"{name}: {exc}"
    items: list[RequireTlsAction | Maps] = []
    for word in words:
        action = parse_action(word)
        if action is not None:
            items.append(action)
            continue
        if ":" not in word:
            return f'{name}: unknown action "{word}"'
        try:
            table = open_table(
                word, settings.config_dir, main_cf=settings.table_parameter, proxy=settings.proxy
            )
        except (TableError, ValueError) as exc:
            return f"{name}: {exc}"
        items.append(Maps([table], name))
    return tuple(items)


def _lookup_key(agent: AgentSettings, destination: str) -> str:
    """The TLS next-hop domain; for LMTP over a UNIX-domain socket, $myhostname."""
    if destination.strip().lower().startswith("unix:"):
        return agent.settings.params.myhostname.lower()
    return nexthop_domain(destination)


async def requiretls_action(agent: AgentSettings, destination: str) -> RequireTlsDecision:
    """The REQUIRETLS action for a message that asked for REQUIRETLS, sent to
    `destination` (the next hop as the request names it). Postfix appends ``enforce``
    when nothing in the list answers."""
    items = _items(agent.settings, agent.transport)
    name = agent.name("requiretls_policy")
    error = "REQUIRETLS policy configuration error"
    if isinstance(items, str):
        return RequireTlsDecision(RequireTlsAction.DISABLE, error, items)
    key = _lookup_key(agent, destination)
    for item in items:
        if isinstance(item, RequireTlsAction):
            return RequireTlsDecision(item)
        try:
            found = await item.find_domain_async(key)
        except TableLookupError:
            warning = f'{name}: {item.tables[0].spec}: lookup of "{key}" failed'
            return RequireTlsDecision(RequireTlsAction.DISABLE, error, warning)
        if found is not None:
            action = parse_action(found.value)
            if action is None:
                warning = f'{name}: {found.table}: "{key}": unknown action "{found.value}"'
                return RequireTlsDecision(RequireTlsAction.DISABLE, error, warning)
            return RequireTlsDecision(action)
    return RequireTlsDecision(RequireTlsAction.ENFORCE)


def mx_authenticated(policy: TlsPolicy, mx_dnssec_valid: bool | None) -> bool:
    """RFC 8689 4.2.1 (1): the server's name came from DNSSEC or MTA-STS (see the module
    docstring); None: no MX/SRV record named the server."""
    return mx_dnssec_valid is not False or policy.mx_authenticated_by_sts
