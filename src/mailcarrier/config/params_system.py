"""Parameter declarations: identity, logging, queue and scheduler, notification, daemon globals.

These are the global (not ``smtp_``) parameters of the seed manual plus the ones the queue,
scheduler, routing and bounce code need. Defaults that depend on the machine or the user
(``myhostname``, ``mydomain``, ``config_directory``, ``queue_directory``, ``process_*``) are
declared empty here and computed by `defaults.py`, so a non-root user needs no /etc and no root.
Protocol parameters are in `params_smtp.py`, TLS and SASL in `params_tls.py`.
"""

from __future__ import annotations

from typing import Final

from mailcarrier.config.paramtype import STR, B, L, M, N, Param, S, T, _p

_NOTIFY: Final = (
    "bounce",
    "2bounce",
    "data",
    "delay",
    "policy",
    "protocol",
    "resource",
    "software",
)
_PARENT_MATCHES: Final = (
    "debug_peer_list, fast_flush_domains, mynetworks, permit_mx_backup_networks, "
    "qmqpd_authorized_clients, relay_domains, smtpd_access_maps"
)

SYSTEM: Final[list[list[Param]]] = [
    # --- identity -----------------------------------------------------------------------
    _p("myhostname", STR, "", note="empty: the system's fully-qualified host name"),
    _p("mydomain", STR, "", note="empty: $myhostname without its first label, or localdomain"),
    _p("myorigin", STR, "$myhostname"),
    _p("mydestination", L, "$myhostname, localhost.$mydomain, localhost"),
    _p("inet_interfaces", L, "all"),
    _p("proxy_interfaces", L, ""),
    _p(
        "inet_protocols",
        L,
        "all",
        choices=("all", "ipv4", "ipv6"),
        note="seed: ipv4; 'all' since Postfix 3.0",
    ),
    _p("recipient_delimiter", STR, ""),
    _p(
        "propagate_unmatched_extensions",
        L,
        "canonical, virtual",
        choices=("canonical", "virtual", "alias", "forward", "include", "generic"),
    ),
    _p("parent_domain_matches_subdomains", L, _PARENT_MATCHES),
    _p("multi_instance_name", STR, ""),
    _p("compatibility_level", STR, "0"),
    # --- logging --------------------------------------------------------------------------
    _p(
        "syslog_name",
        STR,
        "${multi_instance_name?{$multi_instance_name}:{postfix}}",
        note="Postfix 3.5 and later form of the default",
    ),
    _p(
        "syslog_facility",
        STR,
        "mail",
        choices=(
            *("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail"),
            *("news", "syslog", "user", "uucp"),
            *(f"local{n}" for n in range(8)),
        ),
    ),
    _p("maillog_file", STR, ""),
    _p("delay_logging_resolution_limit", N, "2", minimum=0, maximum=6),
    _p("debug_peer_level", N, "2", minimum=1),
    _p("debug_peer_list", L, ""),
    # --- files and processes ----------------------------------------------------------------
    _p("config_directory", STR, "", note="empty: $XDG_CONFIG_HOME/mailcarrier"),
    _p(
        "queue_directory",
        STR,
        "",
        note="empty: $XDG_STATE_HOME/mailcarrier/queue (per user, no root needed)",
    ),
    _p("daemon_timeout", T, "18000s", minimum=1),
    _p("ipc_timeout", T, "3600s", minimum=1),
    _p("max_idle", T, "100s", minimum=1),
    _p("max_use", N, "100", minimum=1),
    _p("process_id", STR, "", read_only=True, note="read-only: set at run time"),
    _p("process_name", STR, "", read_only=True, note="read-only: set at run time"),
    # --- routing ----------------------------------------------------------------------------
    _p("relayhost", L, ""),
    _p("fallback_relay", L, ""),
    _p("transport_maps", M, ""),
    _p("default_transport", STR, "smtp"),
    _p("relay_transport", STR, "relay"),
    _p("best_mx_transport", STR, ""),
    _p("ignore_mx_lookup_error", B, "no"),
    _p("disable_dns_lookups", B, "no", note="obsolete: use smtp_dns_support_level"),
    _p("use_srv_lookup", L, ""),
    _p("allow_srv_lookup_fallback", B, "no"),
    _p("ignore_srv_lookup_error", B, "no"),
    _p("dns_nameservers", L, "", note="mailcarrier extension: empty means /etc/resolv.conf"),
    _p("dns_timeout", T, "10s", minimum=1, note="mailcarrier extension: DNS lookup time limit"),
    _p("internal_mail_filter_classes", L, "", choices=("bounce", "notify")),
    # --- queue and scheduler ------------------------------------------------------------------
    _p("soft_bounce", B, "no"),
    _p("maximal_queue_lifetime", T, "5d", unit="d", minimum=0),
    _p("bounce_queue_lifetime", T, "5d", unit="d", minimum=0),
    _p("minimal_backoff_time", T, "300s", minimum=1),
    _p("maximal_backoff_time", T, "4000s", minimum=1),
    _p("queue_run_delay", T, "300s", minimum=1),
    _p("delay_warning_time", T, "0h", unit="h", minimum=0),
    _p("default_destination_concurrency_limit", N, "20", minimum=0),
    _p("initial_destination_concurrency", N, "5", minimum=1),
    _p("default_destination_recipient_limit", N, "50", minimum=0),
    _p("default_destination_rate_delay", T, "0s", minimum=0),
    _p("default_destination_concurrency_failed_cohort_limit", N, "1", minimum=0),
    _p("default_destination_concurrency_positive_feedback", STR, "1/concurrency", check="feedback"),
    _p("default_destination_concurrency_negative_feedback", STR, "1/concurrency", check="feedback"),
    _p("default_process_limit", N, "100", minimum=1),
    _p("qmgr_message_active_limit", N, "20000", minimum=1),
    _p(
        "delivery_agent_processes",
        N,
        "1",
        minimum=1,
        maximum=64,
        note="mailcarrier extension: 1 runs deliveries inside the scheduler's process; N > 1 "
        "runs them in N agent processes (as Postfix runs smtp(8) beside qmgr), one per core",
    ),
    _p("qmgr_message_recipient_limit", N, "20000", minimum=1),
    # --- notification ---------------------------------------------------------------------------
    _p("notify_classes", L, "resource, software", choices=_NOTIFY),
    _p("bounce_notice_recipient", STR, "postmaster"),
    _p("2bounce_notice_recipient", STR, "postmaster"),
    _p("delay_notice_recipient", STR, "postmaster"),
    _p("error_notice_recipient", STR, "postmaster"),
    _p("double_bounce_sender", STR, "double-bounce"),
    _p("mail_name", STR, "Postfix"),
    _p("bounce_size_limit", S, "50000", minimum=0),
    _p("empty_address_recipient", STR, "MAILER-DAEMON"),
]
