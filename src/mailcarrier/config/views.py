"""Typed views of the parameter table, GENERATED from params_*.py by
`python -m mailcarrier.config.genviews`: do not edit by hand (tests/config/test_views.py checks
it is current). It is longer than the project's ~500 lines for one reason: a line per parameter.

`MainParams` has one attribute per parameter, by its Postfix name (`settings.params.soft_bounce`);
`ClientParams` has the smtp_ parameters of one delivery transport by their suffix
(`agent.params.connect_timeout` is smtp_connect_timeout for SMTP, lmtp_connect_timeout for LMTP).
Values are converted and validated by settings.py; times are seconds, sizes bytes, lists tuples.
"""

from __future__ import annotations

from typing import Literal

from mailcarrier.config.viewbase import frozen_view

__all__ = ["RENAMED", "ClientMapsName", "ClientParams", "MainParams", "MapsName"]

# Postfix names that are not Python identifiers: the attribute of each.
RENAMED: dict[str, str] = {"2bounce_notice_recipient": "double_bounce_notice_recipient"}


@frozen_view
class MainParams:
    """Every parameter, by its Postfix name."""

    address_verify_negative_cache: bool
    address_verify_service_name: str
    agent_concurrency_limit: int
    allow_srv_lookup_fallback: bool
    best_mx_transport: str
    body_checks: tuple[str, ...]
    body_checks_size_limit: int
    bounce_notice_recipient: str
    bounce_queue_lifetime: float
    bounce_service_name: str
    bounce_size_limit: int
    compatibility_level: str
    config_directory: str
    connection_cache_protocol_timeout: float
    daemon_timeout: float
    data_directory: str
    debug_peer_level: int
    debug_peer_list: tuple[str, ...]
    default_destination_concurrency_failed_cohort_limit: int
    default_destination_concurrency_limit: int
    default_destination_concurrency_negative_feedback: str
    default_destination_concurrency_positive_feedback: str
    default_destination_rate_delay: float
    default_destination_recipient_limit: int
    default_process_limit: int
    default_transport: str
    defer_service_name: str
    delay_logging_resolution_limit: int
    delay_notice_recipient: str
    delay_warning_time: float
    delivery_agent_processes: int
    disable_dns_lookups: bool
    disable_mime_input_processing: bool
    disable_mime_output_conversion: bool
    dns_nameservers: tuple[str, ...]
    dns_timeout: float
    double_bounce_notice_recipient: str
    double_bounce_sender: str
    empty_address_default_transport_maps_lookup_key: str
    empty_address_recipient: str
    empty_address_relayhost_maps_lookup_key: str
    error_notice_recipient: str
    event_log_file: str
    fallback_relay: tuple[str, ...]
    fast_flush_domains: tuple[str, ...]
    fleet_busy_retry_time: float
    fleet_concurrency_fail_open: bool
    fleet_dead_host_time: float
    fleet_destination_concurrency_limit: int
    fleet_destination_rate_burst: int
    fleet_destination_rate_limit: str
    fleet_lease_time: float
    fleet_limit_maps: tuple[str, ...]
    fleet_rate_fail_open: bool
    fleet_shared_caches: tuple[str, ...]
    fleet_timeout: float
    fleet_warning_interval: float
    flush_service_name: str
    hash_queue_depth: int
    hash_queue_names: tuple[str, ...]
    header_checks: tuple[str, ...]
    header_size_limit: int
    http_listen: str
    http_listen_allow_remote: bool
    http_listen_token_file: str
    ignore_mx_lookup_error: bool
    ignore_srv_lookup_error: bool
    inet_interfaces: tuple[str, ...]
    inet_protocols: tuple[str, ...]
    initial_destination_concurrency: int
    internal_mail_filter_classes: tuple[str, ...]
    ipc_timeout: float
    line_length_limit: int
    lmtp_address_preference: str
    lmtp_address_verify_target: str
    lmtp_always_send_ehlo: bool
    lmtp_assume_final: bool
    lmtp_balance_inet_protocols: bool
    lmtp_bind_address: str
    lmtp_bind_address6: str
    lmtp_body_checks: tuple[str, ...]
    lmtp_cache_connection: bool
    lmtp_cname_overrides_servername: bool
    lmtp_connect_timeout: float
    lmtp_connection_cache_destinations: tuple[str, ...]
    lmtp_connection_cache_on_demand: bool
    lmtp_connection_cache_time_limit: float
    lmtp_connection_reuse_count_limit: int
    lmtp_connection_reuse_time_limit: float
    lmtp_data_done_timeout: float
    lmtp_data_init_timeout: float
    lmtp_data_xfer_timeout: float
    lmtp_defer_if_no_mx_address_found: bool
    lmtp_delivery_status_filter: tuple[str, ...]
    lmtp_destination_concurrency_limit: int
    lmtp_destination_recipient_limit: int
    lmtp_discard_lhlo_keyword_address_maps: tuple[str, ...]
    lmtp_discard_lhlo_keywords: tuple[str, ...]
    lmtp_dns_reply_filter: tuple[str, ...]
    lmtp_dns_resolver_options: tuple[str, ...]
    lmtp_dns_support_level: str
    lmtp_enforce_tls: bool
    lmtp_fallback_relay: tuple[str, ...]
    lmtp_generic_maps: tuple[str, ...]
    lmtp_happy_eyeballs: bool
    lmtp_happy_eyeballs_delay: float
    lmtp_header_checks: tuple[str, ...]
    lmtp_host_lookup: tuple[str, ...]
    lmtp_lhlo_name: str
    lmtp_lhlo_timeout: float
    lmtp_line_length_limit: int
    lmtp_log_tls_feature_status: bool
    lmtp_mail_timeout: float
    lmtp_mime_header_checks: tuple[str, ...]
    lmtp_min_data_rate: int
    lmtp_mta_sts_enable: bool
    lmtp_mta_sts_https_port: int
    lmtp_mta_sts_timeout: float
    lmtp_mx_address_limit: int
    lmtp_mx_session_limit: int
    lmtp_nested_header_checks: tuple[str, ...]
    lmtp_never_send_ehlo: bool
    lmtp_per_record_deadline: bool
    lmtp_per_request_deadline: bool
    lmtp_pix_workaround_delay_time: float
    lmtp_pix_workaround_maps: tuple[str, ...]
    lmtp_pix_workaround_threshold_time: float
    lmtp_pix_workarounds: tuple[str, ...]
    lmtp_quit_timeout: float
    lmtp_quote_rfc821_envelope: bool
    lmtp_randomize_addresses: bool
    lmtp_rcpt_timeout: float
    lmtp_reply_filter: tuple[str, ...]
    lmtp_requiretls_policy: str
    lmtp_rset_timeout: float
    lmtp_sasl_auth_cache_name: str
    lmtp_sasl_auth_cache_time: float
    lmtp_sasl_auth_enable: bool
    lmtp_sasl_auth_soft_bounce: bool
    lmtp_sasl_mechanism_filter: tuple[str, ...]
    lmtp_sasl_password_maps: tuple[str, ...]
    lmtp_sasl_path: str
    lmtp_sasl_security_options: tuple[str, ...]
    lmtp_sasl_tls_security_options: tuple[str, ...]
    lmtp_sasl_tls_verified_security_options: tuple[str, ...]
    lmtp_sasl_type: str
    lmtp_send_dummy_mail_auth: bool
    lmtp_send_xforward_command: bool
    lmtp_sender_dependent_authentication: bool
    lmtp_skip_5xx_greeting: bool
    lmtp_skip_quit_response: bool
    lmtp_starttls_timeout: float
    lmtp_tcp_port: str
    lmtp_tls_CAfile: str
    lmtp_tls_CApath: str
    lmtp_tls_block_early_mail_reply: bool
    lmtp_tls_cert_file: str
    lmtp_tls_chain_files: tuple[str, ...]
    lmtp_tls_cipherlist: str
    lmtp_tls_ciphers: str
    lmtp_tls_connection_reuse: bool
    lmtp_tls_dane_insecure_mx_policy: str
    lmtp_tls_dcert_file: str
    lmtp_tls_dkey_file: str
    lmtp_tls_eccert_file: str
    lmtp_tls_eckey_file: str
    lmtp_tls_enable_rpk: bool
    lmtp_tls_enforce_peername: bool
    lmtp_tls_enforce_sts_mx_patterns: bool
    lmtp_tls_exclude_ciphers: tuple[str, ...]
    lmtp_tls_fingerprint_cert_match: tuple[str, ...]
    lmtp_tls_fingerprint_digest: str
    lmtp_tls_force_insecure_host_tlsa_lookup: bool
    lmtp_tls_key_file: str
    lmtp_tls_loglevel: int
    lmtp_tls_mandatory_ciphers: str
    lmtp_tls_mandatory_exclude_ciphers: tuple[str, ...]
    lmtp_tls_mandatory_protocols: tuple[str, ...]
    lmtp_tls_note_starttls_offer: bool
    lmtp_tls_per_site: tuple[str, ...]
    lmtp_tls_policy_maps: tuple[str, ...]
    lmtp_tls_protocols: tuple[str, ...]
    lmtp_tls_scert_verifydepth: int
    lmtp_tls_secure_cert_match: tuple[str, ...]
    lmtp_tls_security_level: str
    lmtp_tls_servername: str
    lmtp_tls_session_cache_database: str
    lmtp_tls_session_cache_timeout: float
    lmtp_tls_trust_anchor_file: tuple[str, ...]
    lmtp_tls_verify_cert_match: tuple[str, ...]
    lmtp_tls_wrappermode: bool
    lmtp_tlsrpt_enable: bool
    lmtp_use_chunking: bool
    lmtp_use_tls: bool
    lmtp_xforward_timeout: float
    mail_name: str
    mail_owner: str
    maillog_file: str
    maillog_file_prefixes: tuple[str, ...]
    max_idle: float
    max_use: int
    maximal_backoff_time: float
    maximal_queue_lifetime: float
    message_size_limit: int
    metrics_destination_limit: int
    metrics_directory: str
    mime_boundary_length_limit: int
    mime_header_checks: tuple[str, ...]
    mime_nesting_limit: int
    minimal_backoff_time: float
    multi_instance_name: str
    mydestination: tuple[str, ...]
    mydomain: str
    myhostname: str
    myorigin: str
    nested_header_checks: tuple[str, ...]
    node_id: str
    notify_classes: tuple[str, ...]
    parent_domain_matches_subdomains: tuple[str, ...]
    postlog_service_name: str
    process_id: str
    process_name: str
    propagate_unmatched_extensions: tuple[str, ...]
    proxy_interfaces: tuple[str, ...]
    qmgr_message_active_limit: int
    qmgr_message_recipient_limit: int
    queue_directory: str
    queue_run_delay: float
    recipient_delimiter: str
    relay_domains: tuple[str, ...]
    relay_transport: str
    relayhost: tuple[str, ...]
    requiretls_enable: bool
    requiretls_redact_dsn: bool
    send_cyrus_sasl_authzid: bool
    sender_dependent_default_transport_maps: tuple[str, ...]
    sender_dependent_relayhost_maps: tuple[str, ...]
    service_name: str
    shared_state_password_file: str
    shared_state_server: str
    smtp_address_preference: str
    smtp_address_verify_target: str
    smtp_always_send_ehlo: bool
    smtp_balance_inet_protocols: bool
    smtp_bind_address: str
    smtp_bind_address6: str
    smtp_body_checks: tuple[str, ...]
    smtp_cname_overrides_servername: bool
    smtp_connect_timeout: float
    smtp_connection_cache_destinations: tuple[str, ...]
    smtp_connection_cache_on_demand: bool
    smtp_connection_cache_time_limit: float
    smtp_connection_reuse_count_limit: int
    smtp_connection_reuse_time_limit: float
    smtp_data_done_timeout: float
    smtp_data_init_timeout: float
    smtp_data_xfer_timeout: float
    smtp_defer_if_no_mx_address_found: bool
    smtp_delivery_status_filter: tuple[str, ...]
    smtp_destination_concurrency_limit: int
    smtp_destination_recipient_limit: int
    smtp_discard_ehlo_keyword_address_maps: tuple[str, ...]
    smtp_discard_ehlo_keywords: tuple[str, ...]
    smtp_dns_reply_filter: tuple[str, ...]
    smtp_dns_resolver_options: tuple[str, ...]
    smtp_dns_support_level: str
    smtp_enforce_tls: bool
    smtp_fallback_relay: tuple[str, ...]
    smtp_generic_maps: tuple[str, ...]
    smtp_happy_eyeballs: bool
    smtp_happy_eyeballs_delay: float
    smtp_header_checks: tuple[str, ...]
    smtp_helo_name: str
    smtp_helo_timeout: float
    smtp_host_lookup: tuple[str, ...]
    smtp_line_length_limit: int
    smtp_log_tls_feature_status: bool
    smtp_mail_timeout: float
    smtp_mime_header_checks: tuple[str, ...]
    smtp_min_data_rate: int
    smtp_mta_sts_enable: bool
    smtp_mta_sts_https_port: int
    smtp_mta_sts_timeout: float
    smtp_mx_address_limit: int
    smtp_mx_session_limit: int
    smtp_nested_header_checks: tuple[str, ...]
    smtp_never_send_ehlo: bool
    smtp_per_record_deadline: bool
    smtp_per_request_deadline: bool
    smtp_pix_workaround_delay_time: float
    smtp_pix_workaround_maps: tuple[str, ...]
    smtp_pix_workaround_threshold_time: float
    smtp_pix_workarounds: tuple[str, ...]
    smtp_quit_timeout: float
    smtp_quote_rfc821_envelope: bool
    smtp_randomize_addresses: bool
    smtp_rcpt_timeout: float
    smtp_reply_filter: tuple[str, ...]
    smtp_requiretls_policy: str
    smtp_rset_timeout: float
    smtp_sasl_auth_cache_name: str
    smtp_sasl_auth_cache_time: float
    smtp_sasl_auth_enable: bool
    smtp_sasl_auth_soft_bounce: bool
    smtp_sasl_mechanism_filter: tuple[str, ...]
    smtp_sasl_password_maps: tuple[str, ...]
    smtp_sasl_path: str
    smtp_sasl_security_options: tuple[str, ...]
    smtp_sasl_tls_security_options: tuple[str, ...]
    smtp_sasl_tls_verified_security_options: tuple[str, ...]
    smtp_sasl_type: str
    smtp_send_dummy_mail_auth: bool
    smtp_send_xforward_command: bool
    smtp_sender_dependent_authentication: bool
    smtp_skip_4xx_greeting: bool
    smtp_skip_5xx_greeting: bool
    smtp_skip_quit_response: bool
    smtp_starttls_timeout: float
    smtp_tls_CAfile: str
    smtp_tls_CApath: str
    smtp_tls_block_early_mail_reply: bool
    smtp_tls_cert_file: str
    smtp_tls_chain_files: tuple[str, ...]
    smtp_tls_cipherlist: str
    smtp_tls_ciphers: str
    smtp_tls_connection_reuse: bool
    smtp_tls_dane_insecure_mx_policy: str
    smtp_tls_dcert_file: str
    smtp_tls_dkey_file: str
    smtp_tls_eccert_file: str
    smtp_tls_eckey_file: str
    smtp_tls_enable_rpk: bool
    smtp_tls_enforce_peername: bool
    smtp_tls_enforce_sts_mx_patterns: bool
    smtp_tls_exclude_ciphers: tuple[str, ...]
    smtp_tls_fingerprint_cert_match: tuple[str, ...]
    smtp_tls_fingerprint_digest: str
    smtp_tls_force_insecure_host_tlsa_lookup: bool
    smtp_tls_key_file: str
    smtp_tls_loglevel: int
    smtp_tls_mandatory_ciphers: str
    smtp_tls_mandatory_exclude_ciphers: tuple[str, ...]
    smtp_tls_mandatory_protocols: tuple[str, ...]
    smtp_tls_note_starttls_offer: bool
    smtp_tls_per_site: tuple[str, ...]
    smtp_tls_policy_maps: tuple[str, ...]
    smtp_tls_protocols: tuple[str, ...]
    smtp_tls_scert_verifydepth: int
    smtp_tls_secure_cert_match: tuple[str, ...]
    smtp_tls_security_level: str
    smtp_tls_servername: str
    smtp_tls_session_cache_database: str
    smtp_tls_session_cache_timeout: float
    smtp_tls_trust_anchor_file: tuple[str, ...]
    smtp_tls_verify_cert_match: tuple[str, ...]
    smtp_tls_wrappermode: bool
    smtp_tlsrpt_enable: bool
    smtp_use_chunking: bool
    smtp_use_tls: bool
    smtp_xforward_timeout: float
    smtputf8_autodetect_classes: tuple[str, ...]
    smtputf8_enable: bool
    soft_bounce: bool
    strict_7bit_headers: bool
    strict_8bitmime: bool
    strict_8bitmime_body: bool
    strict_mime_encoding_domain: bool
    syslog_facility: str
    syslog_name: str
    tcp_windowsize: int
    tls_append_default_CA: bool
    tls_daemon_random_bytes: int
    tls_export_cipherlist: str
    tls_high_cipherlist: str
    tls_low_cipherlist: str
    tls_medium_cipherlist: str
    tls_null_cipherlist: str
    tls_preempt_cipherlist: bool
    tls_required_enable: bool
    tls_ssl_options: tuple[str, ...]
    tlsrpt_contact_info: str
    tlsrpt_dkim_domain: str
    tlsrpt_dkim_private_key_file: str
    tlsrpt_dkim_selector: str
    tlsrpt_organization_name: str
    trace_service_name: str
    transport_maps: tuple[str, ...]
    use_srv_lookup: tuple[str, ...]


@frozen_view
class ClientParams:
    """The smtp_ parameters of one delivery transport, by their suffix."""

    address_preference: str
    address_verify_target: str
    always_send_ehlo: bool
    balance_inet_protocols: bool
    bind_address: str
    bind_address6: str
    body_checks: tuple[str, ...]
    cname_overrides_servername: bool
    connect_timeout: float
    connection_cache_destinations: tuple[str, ...]
    connection_cache_on_demand: bool
    connection_cache_time_limit: float
    connection_reuse_count_limit: int
    connection_reuse_time_limit: float
    data_done_timeout: float
    data_init_timeout: float
    data_xfer_timeout: float
    defer_if_no_mx_address_found: bool
    delivery_status_filter: tuple[str, ...]
    destination_concurrency_limit: int
    destination_recipient_limit: int
    discard_ehlo_keyword_address_maps: tuple[str, ...]
    discard_ehlo_keywords: tuple[str, ...]
    dns_reply_filter: tuple[str, ...]
    dns_resolver_options: tuple[str, ...]
    dns_support_level: str
    enforce_tls: bool
    fallback_relay: tuple[str, ...]
    generic_maps: tuple[str, ...]
    happy_eyeballs: bool
    happy_eyeballs_delay: float
    header_checks: tuple[str, ...]
    helo_name: str
    helo_timeout: float
    host_lookup: tuple[str, ...]
    line_length_limit: int
    log_tls_feature_status: bool
    mail_timeout: float
    mime_header_checks: tuple[str, ...]
    min_data_rate: int
    mta_sts_enable: bool
    mta_sts_https_port: int
    mta_sts_timeout: float
    mx_address_limit: int
    mx_session_limit: int
    nested_header_checks: tuple[str, ...]
    never_send_ehlo: bool
    per_record_deadline: bool
    per_request_deadline: bool
    pix_workaround_delay_time: float
    pix_workaround_maps: tuple[str, ...]
    pix_workaround_threshold_time: float
    pix_workarounds: tuple[str, ...]
    quit_timeout: float
    quote_rfc821_envelope: bool
    randomize_addresses: bool
    rcpt_timeout: float
    reply_filter: tuple[str, ...]
    requiretls_policy: str
    rset_timeout: float
    sasl_auth_cache_name: str
    sasl_auth_cache_time: float
    sasl_auth_enable: bool
    sasl_auth_soft_bounce: bool
    sasl_mechanism_filter: tuple[str, ...]
    sasl_password_maps: tuple[str, ...]
    sasl_path: str
    sasl_security_options: tuple[str, ...]
    sasl_tls_security_options: tuple[str, ...]
    sasl_tls_verified_security_options: tuple[str, ...]
    sasl_type: str
    send_dummy_mail_auth: bool
    send_xforward_command: bool
    sender_dependent_authentication: bool
    skip_4xx_greeting: bool
    skip_5xx_greeting: bool
    skip_quit_response: bool
    starttls_timeout: float
    tls_CAfile: str
    tls_CApath: str
    tls_block_early_mail_reply: bool
    tls_cert_file: str
    tls_chain_files: tuple[str, ...]
    tls_cipherlist: str
    tls_ciphers: str
    tls_connection_reuse: bool
    tls_dane_insecure_mx_policy: str
    tls_dcert_file: str
    tls_dkey_file: str
    tls_eccert_file: str
    tls_eckey_file: str
    tls_enable_rpk: bool
    tls_enforce_peername: bool
    tls_enforce_sts_mx_patterns: bool
    tls_exclude_ciphers: tuple[str, ...]
    tls_fingerprint_cert_match: tuple[str, ...]
    tls_fingerprint_digest: str
    tls_force_insecure_host_tlsa_lookup: bool
    tls_key_file: str
    tls_loglevel: int
    tls_mandatory_ciphers: str
    tls_mandatory_exclude_ciphers: tuple[str, ...]
    tls_mandatory_protocols: tuple[str, ...]
    tls_note_starttls_offer: bool
    tls_per_site: tuple[str, ...]
    tls_policy_maps: tuple[str, ...]
    tls_protocols: tuple[str, ...]
    tls_scert_verifydepth: int
    tls_secure_cert_match: tuple[str, ...]
    tls_security_level: str
    tls_servername: str
    tls_session_cache_database: str
    tls_session_cache_timeout: float
    tls_trust_anchor_file: tuple[str, ...]
    tls_verify_cert_match: tuple[str, ...]
    tls_wrappermode: bool
    tlsrpt_enable: bool
    use_chunking: bool
    use_tls: bool
    xforward_timeout: float


# The lookup-table parameters, by name (Settings.open_maps) and by smtp_ suffix
# (AgentSettings.open_maps).
MapsName = Literal[
    "body_checks",
    "fleet_limit_maps",
    "header_checks",
    "lmtp_body_checks",
    "lmtp_delivery_status_filter",
    "lmtp_discard_lhlo_keyword_address_maps",
    "lmtp_dns_reply_filter",
    "lmtp_generic_maps",
    "lmtp_header_checks",
    "lmtp_mime_header_checks",
    "lmtp_nested_header_checks",
    "lmtp_pix_workaround_maps",
    "lmtp_reply_filter",
    "lmtp_sasl_password_maps",
    "lmtp_tls_per_site",
    "lmtp_tls_policy_maps",
    "mime_header_checks",
    "nested_header_checks",
    "sender_dependent_default_transport_maps",
    "sender_dependent_relayhost_maps",
    "smtp_body_checks",
    "smtp_delivery_status_filter",
    "smtp_discard_ehlo_keyword_address_maps",
    "smtp_dns_reply_filter",
    "smtp_generic_maps",
    "smtp_header_checks",
    "smtp_mime_header_checks",
    "smtp_nested_header_checks",
    "smtp_pix_workaround_maps",
    "smtp_reply_filter",
    "smtp_sasl_password_maps",
    "smtp_tls_per_site",
    "smtp_tls_policy_maps",
    "transport_maps",
]
ClientMapsName = Literal[
    "body_checks",
    "delivery_status_filter",
    "discard_ehlo_keyword_address_maps",
    "dns_reply_filter",
    "generic_maps",
    "header_checks",
    "mime_header_checks",
    "nested_header_checks",
    "pix_workaround_maps",
    "reply_filter",
    "sasl_password_maps",
    "tls_per_site",
    "tls_policy_maps",
]
