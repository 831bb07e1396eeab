#!/usr/bin/env bash
# Install the real peers the tests talk to on loopback: Postfix (smtpd, smtp-sink,
# smtp-source, postmap with its lmdb/cdb/pgsql/mysql/sqlite/ldap tables), Dovecot's LMTP server,
# the PostgreSQL, MariaDB, OpenLDAP (slapd, with ldap-utils' slapadd) and memcached servers
# the table tests start privately, the Redis server the fleet tests start privately
# (redis-server: its packaged service never starts, policy-rc.d below), the headless browser
# the status page test loads the page in (chromium), and Berkeley DB's
# headers, which the berkeleydb Python package (the hash:/btree: tables) builds against
# (`make extras`), and pflogsumm (reads the Postfix-format log), from Debian packages. Never starts a system daemon (policy-rc.d), never
# fails the build: tests that need a peer skip when it is absent. slapd is never configured as
# a service (debconf: slapd/no_configuration).
set -u
have() { command -v "$1" >/dev/null 2>&1; }
PACKAGES="postfix postfix-lmdb postfix-cdb dovecot-lmtpd libdb5.3-dev postgresql mariadb-server"
PACKAGES="$PACKAGES postfix-pgsql postfix-mysql postfix-sqlite slapd ldap-utils memcached postfix-ldap"
PACKAGES="$PACKAGES redis-server chromium"
# pflogsumm: the JSON event tests check that it reads the Postfix-format log of a workload.
PACKAGES="$PACKAGES pflogsumm"
if have smtp-sink && [ -x /usr/sbin/postfix ] && [ -x /usr/lib/dovecot/lmtp ] \
    && [ -e /usr/lib/postfix/postfix-lmdb.so ] && [ -e /usr/lib/postfix/postfix-cdb.so ] \
    && [ -e /usr/include/db.h ] \
    && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && have mariadbd \
    && [ -e /usr/lib/postfix/postfix-pgsql.so ] && [ -e /usr/lib/postfix/postfix-mysql.so ] \
    && [ -e /usr/lib/postfix/postfix-sqlite.so ] && [ -x /usr/sbin/slapd ] && have ldapsearch \
    && [ -x /usr/bin/memcached ] && [ -e /usr/lib/postfix/postfix-ldap.so ] \
    && [ -x /usr/bin/redis-server ] && [ -x /usr/bin/chromium ] && have pflogsumm; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! have apt-get; then
    echo "install-peers: not root or no apt-get; tests needing Postfix/Dovecot will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# postfix-lmdb and postfix-cdb register their map types in /etc/postfix/dynamicmaps.cf; their
# scripts' complaint that /etc/postfix/main.cf is missing ("No configuration") is harmless.
# slapd: no /etc/ldap/slapd.d database and no service; the tests write their own cn=config.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
# shellcheck disable=SC2086
(apt-get update -qq && apt-get install -y -qq $PACKAGES >/tmp/mailcarrier-peers.log 2>&1) \
    || echo "install-peers: apt-get failed (see /tmp/mailcarrier-peers.log); dependent tests will skip" >&2
exit 0
