"""Which SASL mechanism to use: smtp_sasl_mechanism_filter, security options, channel binding.

Postfix hands the server's AUTH list, filtered by `smtp_sasl_mechanism_filter`, to Cyrus SASL
together with the security options that fit the connection: `smtp_sasl_security_options`
without TLS, `smtp_sasl_tls_security_options` with TLS, and
`smtp_sasl_tls_verified_security_options` when the server certificate was verified (matched).
Cyrus then picks the strongest mechanism whose properties satisfy every option. This module
does the same with a table of mechanism properties taken from what the Cyrus plugins declare:

- ``noplaintext``: no mechanism that sends the secret as is (PLAIN, LOGIN, XOAUTH2,
  OAUTHBEARER);
- ``noactive``: none open to active (non-dictionary) attack (also CRAM-MD5);
- ``nodictionary``: none whose transcript allows an offline dictionary attack (also SCRAM);
- ``noanonymous``: no ANONYMOUS (which mailcarrier never uses anyway);
- ``mutual_auth``: only mechanisms in which the server proves itself (SCRAM).

Two further rules are mailcarrier's: XOAUTH2, OAUTHBEARER and EXTERNAL are used only when the
filter names them (their "password" is a token, or there is none), EXTERNAL only with a TLS
client certificate; and -PLUS variants only with channel binding data. `choose_mechanism`
returns a `Choice` or a `NoMechanism` value whose text is Postfix's log wording.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import ConfigError
from mailcarrier.sasl.mechanism import (
    ChannelBinding,
    CramMd5,
    Credentials,
    External,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    SaslError,
    XOAuth2,
)
from mailcarrier.sasl.scram import SCRAM_BINDING_TYPES, SCRAM_MECHANISMS, Scram

__all__ = [
    "SECURITY_OPTIONS",
    "TRAITS",
    "Choice",
    "MechanismFilter",
    "MechanismTraits",
    "NoMechanism",
    "SecurityOptions",
    "choose_mechanism",
    "make_mechanism",
    "options_parameter",
]

SECURITY_OPTIONS: Final = ("noplaintext", "noactive", "nodictionary", "noanonymous", "mutual_auth")


@dataclass(frozen=True, slots=True)
class MechanismTraits:
    plaintext: bool  # the secret travels as is
    active: bool  # open to active attack
    dictionary: bool  # open to offline dictionary attack
    mutual: bool  # the server authenticates itself
    strength: int  # higher is preferred
    opt_in: bool = False  # only when smtp_sasl_mechanism_filter names it


TRAITS: Final[dict[str, MechanismTraits]] = {
    "EXTERNAL": MechanismTraits(False, False, False, False, 100, opt_in=True),
    "SCRAM-SHA-256-PLUS": MechanismTraits(False, False, True, True, 90),
    "SCRAM-SHA-1-PLUS": MechanismTraits(False, False, True, True, 85),
    "SCRAM-SHA-256": MechanismTraits(False, False, True, True, 80),
    "SCRAM-SHA-1": MechanismTraits(False, False, True, True, 75),
    "CRAM-MD5": MechanismTraits(False, True, True, False, 50),
    "OAUTHBEARER": MechanismTraits(True, True, False, False, 40, opt_in=True),
    "XOAUTH2": MechanismTraits(True, True, False, False, 35, opt_in=True),
    "PLAIN": MechanismTraits(True, True, True, False, 20),
    "LOGIN": MechanismTraits(True, True, True, False, 10),
}


@dataclass(frozen=True, slots=True)
class SecurityOptions:
    noplaintext: bool = False
    noactive: bool = False
    nodictionary: bool = False
    noanonymous: bool = False
    mutual_auth: bool = False

    @classmethod
    def parse(cls, words: Iterable[str], parameter: str = "") -> SecurityOptions:
        flags: dict[str, bool] = {}
        for word in words:
            key = word.strip().lower()
            if not key:
                continue
            if key not in SECURITY_OPTIONS:
                raise ConfigError(
                    f'{parameter or "SASL security options"}: unknown option "{word}" '
                    f"(want {', '.join(SECURITY_OPTIONS)})",
                    parameter=parameter,
                    value=word,
                )
            flags[key] = True
        return cls(**flags)

    def allows(self, traits: MechanismTraits) -> bool:
        return not (
            (self.noplaintext and traits.plaintext)
            or (self.noactive and traits.active)
            or (self.nodictionary and traits.dictionary)
            or (self.mutual_auth and not traits.mutual)
        )


def options_parameter(tls: bool, verified: bool) -> str:
    """The ``smtp_``-relative suffix of the security options for this connection."""
    if not tls:
        return "sasl_security_options"
    return "sasl_tls_verified_security_options" if verified else "sasl_tls_security_options"


class MechanismFilter:
    """`smtp_sasl_mechanism_filter` as a Postfix string list: names matched case-insensitively
    in order, the first match decides, ``!name`` excludes, ``static:...`` matches anything.
    An empty filter lets every mechanism through."""

    def __init__(self, patterns: Sequence[str], parameter: str = "smtp_sasl_mechanism_filter"):
        self.patterns = tuple(p.strip() for p in patterns if p.strip())
        for pattern in self.patterns:
            bare = pattern.lstrip("!")
            if (":" in bare and not bare.lower().startswith("static:")) or bare.startswith("/"):
                raise ConfigError(
                    f'{parameter}: lookup tables and files are not supported in "{pattern}"; '
                    "list mechanism names (!name to exclude, static:all to match the rest)",
                    parameter=parameter,
                    value=pattern,
                )

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, mechanism: str) -> bool:
        if not self.patterns:
            return True
        for pattern in self.patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!")
            if bare.lower().startswith("static:") or bare.upper() == mechanism.upper():
                return not negate
        return False

    def names(self, mechanism: str) -> bool:
        """True when the filter explicitly lists this mechanism (not via static:)."""
        return any(p.upper() == mechanism.upper() for p in self.patterns)

    def apply(self, offered: Iterable[str]) -> tuple[str, ...]:
        return tuple(m for m in offered if self.matches(m))


@dataclass(frozen=True, slots=True)
class Choice:
    mechanism: str
    binding: ChannelBinding | None  # binding data to use (also with non-PLUS: gs2 "y")


@dataclass(frozen=True, slots=True)
class NoMechanism:
    """Why no mechanism could be used. `compatible` False: nothing the server offered passed
    the filter (Postfix: "offered no compatible authentication mechanisms"); True: the
    security options excluded the rest (Cyrus: "no mechanism available")."""

    compatible: bool
    detail: str


def choose_mechanism(
    offered: Iterable[str],
    *,
    mechanism_filter: MechanismFilter,
    options: SecurityOptions,
    bindings: Sequence[ChannelBinding] = (),
    client_certificate: bool = False,
) -> Choice | NoMechanism:
    """The strongest usable mechanism of those the server offered, or why there is none."""
    offered_upper = tuple(dict.fromkeys(m.upper() for m in offered))
    compatible = [m for m in mechanism_filter.apply(offered_upper) if m in TRAITS]
    if not compatible:
        return NoMechanism(False, " ".join(offered_upper))
    binding = next(
        (b for t in SCRAM_BINDING_TYPES for b in bindings if b.type == t),
        None,
    )
    usable: list[str] = []
    for name in compatible:
        traits = TRAITS[name]
        if traits.opt_in and not mechanism_filter.names(name):
            continue
        if name == "EXTERNAL" and not client_certificate:
            continue
        if name.endswith("-PLUS") and binding is None:
            continue
        if options.allows(traits):
            usable.append(name)
    if not usable:
        return NoMechanism(True, "no mechanism available")
    best = max(usable, key=lambda m: TRAITS[m].strength)
    if best.endswith("-PLUS"):
        return Choice(best, binding)
    # RFC 5802 6: gs2 flag "y" says "I could bind, but you did not offer -PLUS", so that a
    # downgrade is detected. If the server did offer -PLUS (and the filter or the options
    # ruled it out), "y" would make it fail the exchange: send "n" then.
    offered_plus = any(m.endswith("-PLUS") for m in offered_upper)
    use = binding if best in SCRAM_MECHANISMS and not offered_plus else None
    return Choice(best, use)


def make_mechanism(choice: Choice, credentials: Credentials) -> Mechanism:
    """The mechanism object for a choice. Raises `SaslError` for unusable credentials."""
    name = choice.mechanism
    if name in SCRAM_MECHANISMS:
        return Scram(name, credentials, binding=choice.binding)
    simple: dict[str, type[Plain | Login | CramMd5 | External | XOAuth2 | OAuthBearer]] = {
        "PLAIN": Plain,
        "LOGIN": Login,
        "CRAM-MD5": CramMd5,
        "EXTERNAL": External,
        "XOAUTH2": XOAuth2,
        "OAUTHBEARER": OAuthBearer,
    }
    if name not in simple:
        raise SaslError(f"unsupported mechanism {name}")
    return simple[name](credentials)
