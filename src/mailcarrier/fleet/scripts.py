"""The Lua scripts fleet mode runs inside Redis, and the key names they use.

Every decision that must hold across nodes is one script, so that it is atomic in Redis and
costs one round trip: taking a connection lease (`ACQUIRE`), renewing a node's leases
(`RENEW`) and spending a token of a rate (`GCRA`). Time is the Redis server's (``TIME``
inside the script), never a node's clock, so nodes whose clocks disagree still agree on when
a lease expires. Keys of one destination share a hash tag (``{smtp:example.com}``), so each
script touches one Redis Cluster slot. No I/O here: engine.py runs them.

Leases are a sorted set per destination: member the lease id (node, process, number), score
the server time in milliseconds when it expires. Expired members are dropped before
counting, so a node that died stops counting after `fleet_lease_time`. A destination found
dead (``:dead``, with a reason and its own expiry) refuses leases: one node's timeouts spare
the others theirs.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ACQUIRE", "GCRA", "RENEW", "dead_key", "lease_key", "rate_key"]

PREFIX: Final = "mailcarrier:fleet:"
NODES: Final = PREFIX + "nodes"  # sorted set: node id -> last seen (server time, ms)
DESTINATIONS: Final = PREFIX + "destinations"  # sorted set: destination -> last used (ms)


def lease_key(destination: str) -> str:
    return f"{PREFIX}{{{destination}}}:leases"


def rate_key(destination: str) -> str:
    return f"{PREFIX}{{{destination}}}:rate"


def dead_key(destination: str) -> str:
    return f"{PREFIX}{{{destination}}}:dead"


_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: leases, dead. ARGV: lease id, limit (0: none), lease time (ms).
# -> {1, held} taken; {0, held, ms until the first lease expires} busy; {2, reason} dead.
ACQUIRE: Final = (
    _NOW
    + """
local dead = redis.call('GET', KEYS[2])
if dead then return {2, dead} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[2])
if limit > 0 and held >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, held, tonumber(first[2]) - now}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return {1, held + 1}
"""
)

# KEYS: leases. ARGV: lease time (ms), then the lease ids this node holds there. A lease
# lost while Redis was away (restarted empty) is put back: its connection is still open.
RENEW: Final = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lost = 0
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) == 1 then
    lost = lost + 1
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return lost
"""
)

# The generic cell rate algorithm: the key holds the theoretical arrival time (TAT, ms) of
# the next message. A message may go when TAT + interval - burst * interval <= now: `burst`
# at once, then one per interval, so no window of the period holds more than burst + count.
# Up to `wanted` messages at once: as many as that many calls in a row would admit now.
# KEYS: rate. ARGV: interval (ms, may be fractional), burst, wanted (at least 1).
# -> {1, "granted"} admitted (1..wanted); {0, "ms until admitted"} refused.
GCRA: Final = (
    _NOW
    + """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3] or '1')
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local allow_at = tat + interval - burst * interval
if allow_at > now then
  return {0, tostring(allow_at - now)}
end
local granted = 1
if wanted > 1 and interval > 0 then
  granted = math.min(wanted, 1 + math.floor((now - allow_at) / interval))
end
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, tostring(granted)}
"""
)
