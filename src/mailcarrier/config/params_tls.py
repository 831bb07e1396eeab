"""Parameter declarations: the SMTP/LMTP client's TLS and SASL settings, and the tls_ globals.

Declares every TLS and SASL parameter of the seed manual plus the newer ones (DANE, chain
files, SNI, wrapper mode, trust anchors), each ``smtp_`` name with its ``lmtp_`` twin. Current
Postfix defaults are used where they moved on from the seed (protocol floors, cipher grades,
fingerprint digest); the `note` records the seed's value. Protocol parameters are in
`params_smtp.py`, global ones in `params_system.py`.
"""

from __future__ import annotations

from typing import Final

from mailcarrier.config.paramtype import STR, B, L, M, N, Param, T, declare

_LEVELS: Final = (
    "none",
    "may",
    "encrypt",
    "dane",
    "dane-only",
    "fingerprint",
    "verify",
    "secure",
)
_GRADES: Final = ("export", "low", "medium", "high", "null")
_DIGESTS: Final = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
_SASL_OPTS: Final = (
    "noplaintext",
    "noactive",
    "nodictionary",
    "noanonymous",
    "mutual_auth",
)

TLS_SASL: Final[list[list[Param]]] = [
    # --- SASL -------------------------------------------------------------------------
    declare("send_cyrus_sasl_authzid", B, "no"),
    declare("smtp_sasl_auth_enable", B, "no", mirror=True),
    declare("smtp_sasl_password_maps", M, "", mirror=True),
    declare(
        "smtp_sasl_security_options", L, "noplaintext, noanonymous", mirror=True, choices=_SASL_OPTS
    ),
    declare(
        "smtp_sasl_tls_security_options",
        L,
        "$smtp_sasl_security_options",
        mirror=True,
        choices=_SASL_OPTS,
    ),
    declare(
        "smtp_sasl_tls_verified_security_options",
        L,
        "$smtp_sasl_tls_security_options",
        mirror=True,
        choices=_SASL_OPTS,
    ),
    declare("smtp_sasl_mechanism_filter", L, "", mirror=True),
    declare("smtp_sender_dependent_authentication", B, "no", mirror=True),
    declare("smtp_sasl_path", STR, "", mirror=True),
    declare(
        "smtp_sasl_type",
        STR,
        "cyrus",
        mirror=True,
        note="mailcarrier's built-in SASL client answers to the name cyrus",
    ),
    declare("smtp_sasl_auth_cache_name", STR, "", mirror=True),
    declare("smtp_sasl_auth_cache_time", T, "90d", mirror=True, unit="d", minimum=0),
    declare("smtp_sasl_auth_soft_bounce", B, "yes", mirror=True),
    # --- TLS policy -------------------------------------------------------------------
    declare("smtp_tls_security_level", STR, "", mirror=True, choices=_LEVELS),
    declare("smtp_tls_policy_maps", M, "", mirror=True),
    declare("smtp_tls_per_site", M, "", mirror=True, note="obsolete: use smtp_tls_policy_maps"),
    declare("smtp_use_tls", B, "no", mirror=True, note="obsolete: use smtp_tls_security_level"),
    declare("smtp_enforce_tls", B, "no", mirror=True, note="obsolete: use smtp_tls_security_level"),
    declare("smtp_tls_enforce_peername", B, "yes", mirror=True, note="obsolete"),
    declare("smtp_starttls_timeout", T, "300s", mirror=True, minimum=1),
    declare("smtp_tls_wrappermode", B, "no", mirror=True),
    declare("smtp_tls_servername", STR, "", mirror=True),
    declare("smtp_tls_note_starttls_offer", B, "no", mirror=True),
    declare("smtp_tls_loglevel", N, "0", mirror=True, minimum=0, maximum=4),
    declare("smtp_tls_block_early_mail_reply", B, "no", mirror=True),
    declare("smtp_tls_connection_reuse", B, "no", mirror=True),
    declare("smtp_tls_force_insecure_host_tlsa_lookup", B, "no", mirror=True),
    declare(
        "smtp_tls_dane_insecure_mx_policy",
        STR,
        # Postfix 3.6 and later (backported to 3.5.9, 3.4.19, ...): "dane" when the
        # security level is dane, else "may"; the lmtp_ twin follows lmtp_tls_security_level.
        "${{$smtp_tls_security_level} == {dane} ? {dane} : {may}}",
        mirror=True,
        choices=("may", "encrypt", "dane"),
    ),
    declare(
        "smtp_log_tls_feature_status",
        B,
        "yes",
        mirror=True,
        note="Postfix 3.11: the tls= field of delivery status logging",
    ),
    # --- REQUIRETLS (RFC 8689), Postfix 3.10/3.11 -----------------------------------------
    declare(
        "tls_required_enable",
        B,
        "yes",
        note='Postfix 3.10: a message with a "TLS-Required: No" header is delivered with '
        "TLS policy lookups off and the TLS security level at most may (RFC 8689 section 4.3), "
        "unless it was also submitted with REQUIRETLS",
    ),
    declare(
        "requiretls_enable",
        B,
        "yes",
        note="Postfix 3.11: honour REQUIRETLS (sendmail/deliver --requiretls, requiretls=True, "
        "Postfix's sendopts): such a message goes only over verified TLS to a securely found "
        "server that announces REQUIRETLS, as smtp_requiretls_policy enforces",
    ),
    declare(
        "requiretls_redact_dsn",
        B,
        "yes",
        note="Postfix 3.11: a notice about a REQUIRETLS message leaves its body out (as RET=HDRS) "
        "and is itself sent without REQUIRETLS (RFC 8689 section 5)",
    ),
    declare(
        "smtp_requiretls_policy",
        STR,
        # Postfix 3.11's default (config/expand.py has its named functions).
        "inline:{{${domain_to_ascii{$mydomain}}=opportunistic}, "
        "{.${domain_to_ascii{$mydomain}}=opportunistic}, {localhost=opportunistic}}, "
        "cidr:{{0.0.0.0/0 opportunistic}, {::/0 opportunistic}}, enforce",
        mirror=True,
        lmtp_default="opportunistic",
        note="Postfix 3.11: actions (enforce, opportunistic+starttls, opportunistic, disable) "
        "and type:table lookups by TLS next-hop domain, the first answer wins; default: "
        "opportunistic for $mydomain, localhost and address literals, enforce elsewhere",
    ),
    declare("smtp_tls_enable_rpk", B, "no", mirror=True),
    declare(
        "smtp_tls_enforce_sts_mx_patterns",
        B,
        "yes",
        mirror=True,
        note="Postfix 3.10.5: an STS plugin's answer (policy_type=sts) in smtp_tls_policy_maps"
        " admits only MX hosts matching its mx_host_pattern and matches the certificate"
        " against the MX host name",
    ),
    # --- MTA-STS (RFC 8461), native: not in Postfix (which needs a policy plugin) ---------
    declare(
        "smtp_mta_sts_enable",
        B,
        "yes",
        mirror=True,
        note="ours: discover and apply the MTA-STS policies (RFC 8461) of MX destinations;"
        " an entry in smtp_tls_policy_maps and DANE take precedence",
    ),
    declare(
        "smtp_mta_sts_timeout",
        T,
        "30s",
        minimum=1,
        mirror=True,
        note="ours: time limit of one MTA-STS policy fetch (connect, TLS, request, reply)",
    ),
    declare(
        "smtp_mta_sts_https_port",
        N,
        "443",
        minimum=1,
        maximum=65535,
        mirror=True,
        note="ours: the port of https://mta-sts.<domain>/ (RFC 8461: 443; for tests)",
    ),
    # --- TLSRPT (RFC 8460): Postfix 3.10 names where it has them ------------------------
    declare(
        "smtp_tlsrpt_enable",
        B,
        "no",
        mirror=True,
        note="Postfix 3.10: count every TLS attempt per policy domain and day for RFC 8460 "
        "reports (kept in $data_directory/tlsrpt.sqlite, sent by `mailcarrier run`); "
        "Postfix hands them to an external tlsrpt daemon instead",
    ),
    declare(
        "tlsrpt_organization_name",
        STR,
        "$myhostname",
        note="ours: organization-name of the TLSRPT reports sent (RFC 8460 section 4.4)",
    ),
    declare(
        "tlsrpt_contact_info",
        STR,
        "postmaster@$mydomain",
        note="ours: contact-info of the TLSRPT reports, and the sender of those sent by mail",
    ),
    declare(
        "tlsrpt_dkim_domain",
        STR,
        "$mydomain",
        note="ours: the d= of the DKIM signature of TLSRPT reports sent by mail (RFC 8460 3)",
    ),
    declare(
        "tlsrpt_dkim_selector",
        STR,
        "",
        note="ours: the s= of that DKIM signature; empty: reports are not sent by mail",
    ),
    declare(
        "tlsrpt_dkim_private_key_file",
        STR,
        "",
        note="ours: the PEM private key (RSA or Ed25519) of that DKIM signature",
    ),
    # --- protocols and ciphers ----------------------------------------------------------
    declare(
        "smtp_tls_protocols",
        L,
        ">=TLSv1",
        mirror=True,
        note="seed: !SSLv2; Postfix 3.6 and later: >=TLSv1",
    ),
    declare(
        "smtp_tls_mandatory_protocols",
        L,
        ">=TLSv1",
        mirror=True,
        note="seed: SSLv3, TLSv1; Postfix 3.6 and later: >=TLSv1",
    ),
    declare(
        "smtp_tls_ciphers",
        STR,
        "medium",
        mirror=True,
        choices=_GRADES,
        note="seed: export; medium since Postfix 2.6",
    ),
    declare("smtp_tls_mandatory_ciphers", STR, "medium", mirror=True, choices=_GRADES),
    declare("smtp_tls_exclude_ciphers", L, "", mirror=True),
    declare("smtp_tls_mandatory_exclude_ciphers", L, "", mirror=True),
    declare("smtp_tls_cipherlist", STR, "", mirror=True, note="obsolete: use smtp_tls_ciphers"),
    declare(
        "tls_high_cipherlist",
        STR,
        "aNULL:-aNULL:HIGH:@STRENGTH",
        note="seed: ALL:!EXPORT:!LOW:!MEDIUM:+RC4:@STRENGTH; current OpenSSL-era value",
    ),
    declare(
        "tls_medium_cipherlist",
        STR,
        "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
        note="seed: ALL:!EXPORT:!LOW:+RC4:@STRENGTH; current OpenSSL-era value",
    ),
    declare(
        "tls_low_cipherlist",
        STR,
        "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH",
        note="seed: ALL:!EXPORT:+RC4:@STRENGTH; current OpenSSL-era value",
    ),
    declare(
        "tls_export_cipherlist",
        STR,
        "aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH",
        note="seed: ALL:+RC4:@STRENGTH; current OpenSSL-era value",
    ),
    declare("tls_null_cipherlist", STR, "eNULL:!aNULL"),
    declare("tls_daemon_random_bytes", N, "32", minimum=0),
    declare("tls_ssl_options", L, ""),
    declare("tls_preempt_cipherlist", B, "no"),
    declare("tls_append_default_CA", B, "no"),
    # --- certificates and verification --------------------------------------------------
    declare("smtp_tls_CAfile", STR, "", mirror=True),
    declare("smtp_tls_CApath", STR, "", mirror=True),
    declare("smtp_tls_trust_anchor_file", L, "", mirror=True),
    declare("smtp_tls_chain_files", L, "", mirror=True),
    declare("smtp_tls_cert_file", STR, "", mirror=True),
    declare("smtp_tls_key_file", STR, "$smtp_tls_cert_file", mirror=True),
    declare("smtp_tls_dcert_file", STR, "", mirror=True),
    declare("smtp_tls_dkey_file", STR, "$smtp_tls_dcert_file", mirror=True),
    declare("smtp_tls_eccert_file", STR, "", mirror=True),
    declare("smtp_tls_eckey_file", STR, "$smtp_tls_eccert_file", mirror=True),
    declare("smtp_tls_scert_verifydepth", N, "9", mirror=True, minimum=1),
    declare("smtp_tls_secure_cert_match", L, "nexthop, dot-nexthop", mirror=True),
    declare("smtp_tls_verify_cert_match", L, "hostname", mirror=True),
    declare("smtp_tls_fingerprint_cert_match", L, "", mirror=True),
    declare(
        "smtp_tls_fingerprint_digest",
        STR,
        "sha256",
        mirror=True,
        choices=_DIGESTS,
        note="seed: md5; Postfix 3.6 and later: sha256",
    ),
    declare("smtp_tls_session_cache_database", STR, "", mirror=True),
    declare("smtp_tls_session_cache_timeout", T, "3600s", mirror=True, minimum=0),
]
