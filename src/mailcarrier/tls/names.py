"""Certificate name matching for the verify and secure levels (RFC 6125, as Postfix does it).

`certificate_names()` lists the DNS names a server certificate presents: its subjectAltName
dNSName entries, or, only when it has none, its subject CommonName (RFC 6125 6.4.4).
`expand_matches()` turns ``smtp_tls_verify_cert_match``/``smtp_tls_secure_cert_match``
strategies (``hostname``, ``nexthop``, ``dot-nexthop``) into names; `name_matches()` compares:
a certificate wildcard only as the whole left-most label and standing for exactly one
label (RFC 6125 6.4.3), and a match name with a leading dot matching any subdomain.
Match names are compared in A-labels (idn.py, the conversion DNS lookups use), so a
UTF-8 next hop matches its certificate. Chain trust, fingerprints and DANE are in verify.py
and dane.py. cryptography is imported when a certificate is first read, not with this module
(it is slow to import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailcarrier.idn import domain_to_ascii

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["certificate_names", "expand_matches", "first_match", "name_matches"]


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """SAN dNSNames; the CommonName only when there is no dNSName at all."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns = tuple(n.lower().rstrip(".") for n in san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = ()
    if dns:
        return dns
    names = []
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
        names.append(value.lower().rstrip("."))
    return tuple(names)


def _a_labels(name: str) -> str:
    """A match name in A-labels (idn.py), as certificates carry them (RFC 6125
    6.4.2); a leading "." stays, and a name IDNA refuses is kept as it is (it matches
    nothing a certificate can hold)."""
    dot = "." if name.startswith(".") else ""
    bare = name.removeprefix(".").rstrip(".").lower()
    ascii_name = domain_to_ascii(bare)
    return dot + (bare if ascii_name is None else ascii_name)


def expand_matches(strategies: tuple[str, ...], hostname: str, nexthop: str) -> tuple[str, ...]:
    """Strategy words -> names; anything else is a literal name (``.example.com`` allowed).
    Names are in A-labels: a UTF-8 next hop matches the A-labels of its certificate."""
    out: list[str] = []
    for word in strategies:
        key = word.lower()
        if key == "hostname":
            out.append(_a_labels(hostname))
        elif key == "nexthop":
            out.append(_a_labels(nexthop))
        elif key == "dot-nexthop":
            out.append("." + _a_labels(nexthop))
        else:
            out.append(_a_labels(key))
    return tuple(n for n in out if n and n != ".")


def _wildcard_parent(cert_name: str) -> str | None:
    """``*.example.com`` -> ``example.com``; None for anything else (no partial wildcards)."""
    if cert_name.startswith("*.") and "*" not in cert_name[2:] and "." in cert_name[2:]:
        return cert_name[2:]
    return None


def name_matches(cert_name: str, wanted: str) -> bool:
    """Does certificate name `cert_name` satisfy match name `wanted`?"""
    cert_name = cert_name.lower()
    wanted = wanted.lower()
    parent = _wildcard_parent(cert_name)
    if "*" in cert_name and parent is None:
        return False
    if wanted.startswith("."):
        suffix = wanted[1:]
        if parent is not None:
            # Every name the wildcard covers is a subdomain of `suffix` when its parent
            # is `suffix` or below it.
            return parent == suffix or parent.endswith(wanted)
        return cert_name.endswith(wanted) and len(cert_name) > len(wanted)
    if parent is not None:
        label, _, rest = wanted.partition(".")
        return bool(label) and rest == parent
    return cert_name == wanted


def first_match(cert: x509.Certificate, wanted: tuple[str, ...]) -> str | None:
    """The first certificate name that satisfies any of `wanted`, or None."""
    for cert_name in certificate_names(cert):
        for name in wanted:
            if name_matches(cert_name, name):
                return cert_name
    return None
