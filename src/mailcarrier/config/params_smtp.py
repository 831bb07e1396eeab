"""Parameter declarations: the SMTP/LMTP client's protocol, timing, routing and content knobs.

Every ``smtp_`` parameter of the seed manual (and the newer ones later Postfix releases added)
is declared here with its ``lmtp_`` twin. Defaults are Postfix's current ones; where they differ
from the seed manual the `note` says so. TLS and SASL live in `params_tls.py`, global and queue
parameters in `params_system.py`; `params.py` assembles the table.
"""

from __future__ import annotations

from typing import Final

from mailcarrier.config.paramtype import STR, B, L, M, N, Param, S, T, declare

_HOST_LOOKUP: Final = ("dns", "native")
_PIX: Final = ("disable_esmtp", "delay_dotcrlf")
# Postfix's classes of mail (mail_params.h MAIL_SRC_NAME_*), and "all"; what each means for
# mailcarrier is in delivery/autodetect.py.
SMTPUTF8_AUTODETECT_CLASSES: Final = (
    "sendmail",
    "smtpd",
    "qmqpd",
    "forward",
    "bounce",
    "notify",
    "verify",
    "all",
)

PROTOCOL: Final[list[list[Param]]] = [
    # --- compatibility with broken servers -------------------------------------------
    declare("smtp_always_send_ehlo", B, "yes", mirror=True),
    declare("smtp_never_send_ehlo", B, "no", mirror=True),
    declare("smtp_defer_if_no_mx_address_found", B, "no", mirror=True),
    declare(
        "smtp_line_length_limit",
        N,
        "998",
        mirror=True,
        minimum=0,
        check="linelimit",
        note="seed: 990; Postfix 2.9 and later: 998 (RFC 5321's 1000 with CRLF)",
    ),
    declare("smtp_pix_workaround_delay_time", T, "10s", mirror=True, minimum=1),
    declare("smtp_pix_workaround_threshold_time", T, "500s", mirror=True, minimum=0),
    declare("smtp_pix_workarounds", L, "disable_esmtp, delay_dotcrlf", mirror=True, choices=_PIX),
    declare("smtp_pix_workaround_maps", M, "", mirror=True),
    declare("smtp_quote_rfc821_envelope", B, "yes", mirror=True),
    declare("smtp_skip_5xx_greeting", B, "yes", mirror=True),
    declare("smtp_skip_quit_response", B, "yes", mirror=True),
    declare(
        "smtp_skip_4xx_greeting", B, "yes", note="obsolete; Postfix always skips 4xx greetings"
    ),
    declare(
        "smtp_discard_ehlo_keyword_address_maps",
        M,
        "",
        mirror="lmtp_discard_lhlo_keyword_address_maps",
    ),
    declare("smtp_discard_ehlo_keywords", L, "", mirror="lmtp_discard_lhlo_keywords"),
    declare("smtp_generic_maps", M, "", mirror=True),
    declare(
        "smtp_cname_overrides_servername",
        B,
        "no",
        mirror=True,
        note="seed: version dependent; 'no' since Postfix 2.3",
    ),
    declare("smtp_reply_filter", M, "", mirror=True),
    declare("smtp_delivery_status_filter", M, "", mirror=True),
    declare("smtp_send_dummy_mail_auth", B, "no", mirror=True),
    declare("smtp_send_xforward_command", B, "no", mirror=True),
    declare(
        "smtp_use_chunking",
        B,
        "no",
        mirror=True,
        note="mailcarrier's own: BDAT (RFC 3030) when the server announces CHUNKING; "
        "Postfix's client has no CHUNKING support",
    ),
    declare("smtp_address_verify_target", STR, "rcpt", mirror=True, choices=("rcpt", "data")),
    declare("smtp_header_checks", M, "", mirror=True),
    declare("smtp_mime_header_checks", M, "", mirror=True),
    declare("smtp_nested_header_checks", M, "", mirror=True),
    declare("smtp_body_checks", M, "", mirror=True),
    declare("smtp_helo_name", STR, "$myhostname", mirror="lmtp_lhlo_name"),
    declare("smtp_bind_address", STR, "", mirror=True, check="ipv4"),
    declare("smtp_bind_address6", STR, "", mirror=True, check="ipv6"),
    declare("lmtp_tcp_port", STR, "24"),
    declare("lmtp_assume_final", B, "no"),
    # --- server lookup and routing ----------------------------------------------------
    declare("smtp_host_lookup", L, "dns", mirror=True, choices=_HOST_LOOKUP),
    declare("smtp_randomize_addresses", B, "yes", mirror=True),
    declare("smtp_mx_address_limit", N, "5", mirror=True, minimum=0),
    declare("smtp_mx_session_limit", N, "2", mirror=True, minimum=0),
    declare(
        "smtp_dns_support_level",
        STR,
        "",
        mirror=True,
        choices=("disabled", "enabled", "dnssec"),
    ),
    declare("smtp_dns_resolver_options", L, "", mirror=True),
    declare("smtp_dns_reply_filter", M, "", mirror=True),
    declare("smtp_address_preference", STR, "any", mirror=True, choices=("any", "ipv4", "ipv6")),
    declare("smtp_balance_inet_protocols", B, "yes", mirror=True),
    declare(
        "smtp_happy_eyeballs",
        B,
        "no",
        mirror=True,
        note="mailcarrier extension: race the addresses of one MX preference (RFC 8305)",
    ),
    declare(
        "smtp_happy_eyeballs_delay",
        T,
        "0.25s",
        mirror=True,
        minimum=0,
        note="mailcarrier extension: RFC 8305 connection attempt delay",
    ),
    declare("smtp_fallback_relay", L, "$fallback_relay", mirror=True),
    declare(
        "smtp_destination_concurrency_limit",
        N,
        "$default_destination_concurrency_limit",
        mirror=True,
        minimum=0,
    ),
    declare(
        "smtp_destination_recipient_limit",
        N,
        "$default_destination_recipient_limit",
        mirror=True,
        minimum=0,
    ),
    # --- time limits ------------------------------------------------------------------
    declare("smtp_connect_timeout", T, "30s", mirror=True, lmtp_default="0s", minimum=0),
    declare("smtp_helo_timeout", T, "300s", mirror="lmtp_lhlo_timeout", minimum=1),
    declare("smtp_xforward_timeout", T, "300s", mirror=True, minimum=1),
    declare("smtp_mail_timeout", T, "300s", mirror=True, minimum=1),
    declare("smtp_rcpt_timeout", T, "300s", mirror=True, minimum=1),
    declare("smtp_data_init_timeout", T, "120s", mirror=True, minimum=1),
    declare("smtp_data_xfer_timeout", T, "180s", mirror=True, minimum=1),
    declare("smtp_data_done_timeout", T, "600s", mirror=True, minimum=1),
    declare("smtp_rset_timeout", T, "20s", mirror=True, minimum=1),
    declare("smtp_quit_timeout", T, "300s", mirror=True, minimum=1),
    declare("smtp_per_record_deadline", B, "no", mirror=True, note="Postfix 2.9-3.6"),
    declare(
        "smtp_per_request_deadline",
        B,
        # Postfix 3.7 and later: the older per-record switch turns this one on.
        "${smtp_per_record_deadline?{$smtp_per_record_deadline}:{no}}",
        mirror=True,
    ),
    declare("smtp_min_data_rate", N, "500", mirror=True, minimum=1),
    # --- connection cache -------------------------------------------------------------
    declare("lmtp_cache_connection", B, "yes"),
    declare("smtp_connection_cache_destinations", L, "", mirror=True),
    declare("smtp_connection_cache_on_demand", B, "yes", mirror=True),
    declare("smtp_connection_reuse_time_limit", T, "300s", mirror=True, minimum=1),
    declare("smtp_connection_reuse_count_limit", N, "0", mirror=True, minimum=0),
    declare("smtp_connection_cache_time_limit", T, "2s", mirror=True, minimum=1),
    declare("connection_cache_protocol_timeout", T, "5s", minimum=1),
    # --- content ----------------------------------------------------------------------
    declare("disable_mime_output_conversion", B, "no"),
    declare("disable_mime_input_processing", B, "no"),
    declare("mime_boundary_length_limit", N, "2048", minimum=1),
    declare("mime_nesting_limit", N, "100", minimum=1),
    declare("header_size_limit", S, "102400", minimum=1),
    declare("body_checks_size_limit", S, "51200", minimum=0),
    declare("mime_header_checks", M, "$header_checks"),
    declare("nested_header_checks", M, "$header_checks"),
    declare("header_checks", M, ""),
    declare("body_checks", M, ""),
    declare("strict_8bitmime", B, "no"),
    declare("strict_7bit_headers", B, "no"),
    declare("strict_8bitmime_body", B, "no"),
    declare("strict_mime_encoding_domain", B, "no"),
    declare("smtputf8_enable", B, "yes"),
    declare(
        "smtputf8_autodetect_classes",
        L,
        "sendmail, verify",
        choices=SMTPUTF8_AUTODETECT_CLASSES,
        note="sendmail: the sendmail and deliver commands, submit() and make_request(); "
        "bounce: notices; notify: postmaster transcripts",
    ),
    declare("message_size_limit", S, "10240000", minimum=0),
    declare("tcp_windowsize", N, "0", minimum=0),
]
