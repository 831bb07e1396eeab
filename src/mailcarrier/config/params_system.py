"""Parameter declarations: identity, logging, queue and scheduler, notification, daemon globals.

These are the global (not ``smtp_``) parameters of the seed manual plus the ones the queue,
scheduler, routing and bounce code need. Defaults that depend on the machine or the user
(``myhostname``, ``mydomain``, ``config_directory``, ``queue_directory``, ``data_directory``,
``process_*``) are declared empty here and computed by `defaults.py`, so a non-root user needs
no /etc and no root.
Protocol parameters are in `params_smtp.py`, TLS and SASL in `params_tls.py`.
"""

from __future__ import annotations

from typing import Final

from mailcarrier.config.paramtype import STR, B, L, M, N, Param, S, T, declare

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
    declare("myhostname", STR, "", note="empty: the system's fully-qualified host name"),
    declare("mydomain", STR, "", note="empty: $myhostname without its first label, or localdomain"),
    declare("myorigin", STR, "$myhostname"),
    declare("mydestination", L, "$myhostname, localhost.$mydomain, localhost"),
    declare("relay_domains", L, "${{$compatibility_level} <level {2} ? {$mydestination} : {}}"),
    declare(
        "fast_flush_domains",
        L,
        "$relay_domains",
        note="the domains whose deferred mail the Postfix-native agent tells flush(8) about",
    ),
    declare("inet_interfaces", L, "all"),
    declare("proxy_interfaces", L, ""),
    declare(
        "inet_protocols",
        L,
        "all",
        choices=("all", "ipv4", "ipv6"),
        note="seed: ipv4; 'all' since Postfix 3.0",
    ),
    declare("recipient_delimiter", STR, ""),
    declare(
        "propagate_unmatched_extensions",
        L,
        "canonical, virtual",
        choices=("canonical", "virtual", "alias", "forward", "include", "generic"),
    ),
    declare("parent_domain_matches_subdomains", L, _PARENT_MATCHES),
    declare("multi_instance_name", STR, ""),
    declare("compatibility_level", STR, "0"),
    # --- logging --------------------------------------------------------------------------
    declare(
        "syslog_name",
        STR,
        "${multi_instance_name?{$multi_instance_name}:{postfix}}",
        note="Postfix 3.5 and later form of the default",
    ),
    declare(
        "syslog_facility",
        STR,
        "mail",
        choices=(
            *("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail"),
            *("news", "syslog", "user", "uucp"),
            *(f"local{n}" for n in range(8)),
        ),
    ),
    declare("maillog_file", STR, ""),
    declare("maillog_file_prefixes", L, "/var, /dev/stdout"),
    declare(
        "event_log_file",
        STR,
        "",
        note="mailcarrier extension: empty: off; a file that gets one JSON object per line "
        "per event (message queued, delivery attempt, notice, expiry, operator action) "
        "beside the Postfix-format log",
    ),
    declare(
        "postlog_service_name",
        STR,
        "postlog",
        note="Postfix-native mode: with maillog_file set, lines go to the postlogd(8) socket "
        "$queue_directory/public/$postlog_service_name",
    ),
    declare("delay_logging_resolution_limit", N, "2", minimum=0, maximum=6),
    declare("debug_peer_level", N, "2", minimum=1),
    declare("debug_peer_list", L, ""),
    # --- files and processes ----------------------------------------------------------------
    declare("config_directory", STR, "", note="empty: $XDG_CONFIG_HOME/mailcarrier"),
    declare(
        "queue_directory",
        STR,
        "",
        note="empty: $XDG_STATE_HOME/mailcarrier/queue (per user, no root needed)",
    ),
    declare(
        "data_directory",
        STR,
        "",
        note="empty: $XDG_STATE_HOME/mailcarrier/data (per user); the MTA-STS policy cache, "
        "TLSRPT counts, the fleet node_id",
    ),
    declare("daemon_timeout", T, "18000s", minimum=1),
    declare("ipc_timeout", T, "3600s", minimum=1),
    declare("max_idle", T, "100s", minimum=1),
    declare("max_use", N, "100", minimum=1),
    declare("mail_owner", STR, "postfix"),
    declare(
        "service_name",
        STR,
        "",
        note="Postfix-native mode: the master.cf service (-n or the command name), set at "
        "run time; read-only in Postfix",
    ),
    declare(
        "agent_concurrency_limit",
        N,
        "20",
        minimum=1,
        maximum=10000,
        note="mailcarrier extension, Postfix-native mode: the qmgr(8) connections one "
        "mailcarrier-smtp/-lmtp process serves at once; master(8) starts another process "
        "(up to the master.cf maxproc) only when every process is at this limit; 1 behaves "
        "as smtp(8). The default is Postfix's default destination concurrency (one busy "
        "destination in one process, one core); to use N cores at a concurrency C, set "
        "C/N rounded up (each process about 33 MB)",
    ),
    # Postfix-native mode: the services an agent reports to, and how it finds queue files.
    declare("bounce_service_name", STR, "bounce"),
    declare("defer_service_name", STR, "defer"),
    declare("trace_service_name", STR, "trace"),
    declare("address_verify_service_name", STR, "verify"),
    declare("flush_service_name", STR, "flush"),
    declare("address_verify_negative_cache", B, "yes"),
    declare("hash_queue_names", L, "deferred, defer"),
    declare("hash_queue_depth", N, "1", minimum=1, maximum=16),
    declare("line_length_limit", N, "2048", minimum=1),
    declare("process_id", STR, "", read_only=True, note="read-only: set at run time"),
    declare("process_name", STR, "", read_only=True, note="read-only: set at run time"),
    # --- routing ----------------------------------------------------------------------------
    declare("relayhost", L, ""),
    declare("fallback_relay", L, ""),
    declare("transport_maps", M, ""),
    declare("default_transport", STR, "smtp"),
    declare("relay_transport", STR, "relay"),
    declare("sender_dependent_default_transport_maps", M, ""),
    declare("empty_address_default_transport_maps_lookup_key", STR, "<>"),
    declare("sender_dependent_relayhost_maps", M, ""),
    declare("empty_address_relayhost_maps_lookup_key", STR, "<>"),
    declare("best_mx_transport", STR, ""),
    declare("ignore_mx_lookup_error", B, "no"),
    declare("disable_dns_lookups", B, "no", note="obsolete: use smtp_dns_support_level"),
    declare("use_srv_lookup", L, ""),
    declare("allow_srv_lookup_fallback", B, "no"),
    declare("ignore_srv_lookup_error", B, "no"),
    declare("dns_nameservers", L, "", note="mailcarrier extension: empty means /etc/resolv.conf"),
    declare(
        "dns_timeout", T, "10s", minimum=1, note="mailcarrier extension: DNS lookup time limit"
    ),
    declare("internal_mail_filter_classes", L, "", choices=("bounce", "notify")),
    # --- queue and scheduler ------------------------------------------------------------------
    declare("soft_bounce", B, "no"),
    declare("maximal_queue_lifetime", T, "5d", unit="d", minimum=0),
    declare("bounce_queue_lifetime", T, "5d", unit="d", minimum=0),
    declare("minimal_backoff_time", T, "300s", minimum=1),
    declare("maximal_backoff_time", T, "4000s", minimum=1),
    declare("queue_run_delay", T, "300s", minimum=1),
    declare("delay_warning_time", T, "0h", unit="h", minimum=0),
    declare("default_destination_concurrency_limit", N, "20", minimum=0),
    declare("initial_destination_concurrency", N, "5", minimum=1),
    declare("default_destination_recipient_limit", N, "50", minimum=0),
    declare("default_destination_rate_delay", T, "0s", minimum=0),
    declare("default_destination_concurrency_failed_cohort_limit", N, "1", minimum=0),
    declare(
        "default_destination_concurrency_positive_feedback", STR, "1/concurrency", check="feedback"
    ),
    declare(
        "default_destination_concurrency_negative_feedback", STR, "1/concurrency", check="feedback"
    ),
    declare("default_process_limit", N, "100", minimum=1),
    declare("qmgr_message_active_limit", N, "20000", minimum=1),
    declare(
        "delivery_agent_processes",
        N,
        "1",
        minimum=1,
        maximum=64,
        note="mailcarrier extension: 1 runs deliveries inside the scheduler's process; N > 1 "
        "runs them in N agent processes (as Postfix runs smtp(8) beside qmgr), one per core",
    ),
    declare("qmgr_message_recipient_limit", N, "20000", minimum=1),
    # --- notification ---------------------------------------------------------------------------
    declare("notify_classes", L, "resource, software", choices=_NOTIFY),
    declare("bounce_notice_recipient", STR, "postmaster"),
    declare("2bounce_notice_recipient", STR, "postmaster"),
    declare("delay_notice_recipient", STR, "postmaster"),
    declare("error_notice_recipient", STR, "postmaster"),
    declare("double_bounce_sender", STR, "double-bounce"),
    declare("mail_name", STR, "Postfix"),
    declare("bounce_size_limit", S, "50000", minimum=0),
    declare("empty_address_recipient", STR, "MAILER-DAEMON"),
]
