"""Lua scripts that make each cluster directory and queue operation atomic in Redis.

Times come from Redis's own clock (``TIME``) so nodes need not agree on theirs.
"""

NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# KEYS: peer1, ids1, peer2, ids2, ...  ARGV: node, ttl_ms, then per claim: token,
# key_limit (-1: the claiming node is full), peer_id.  Claims in order (so a key's limit
# counts earlier claims of the same batch). Takes an id exactly when
# signalling.decisions.decide_claim admits (free and not at the limit, or held by the
# same token: a takeover) and returns, per claim, what it saw for that decision:
# {held 1|0, holder token, at_limit 1|0, holder node, ...}.
CLAIM_MANY = NOW + """
local node = ARGV[1]
local ttl = tonumber(ARGV[2])
local out = {}
local swept = {}
for i = 1, #KEYS, 2 do
  local a = 3 + (i - 1) / 2 * 3
  local token, limit, id = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local cur = redis.call('GET', KEYS[i])
  if cur then
    local sep = string.find(cur, '|', 1, true)
    local held = string.sub(cur, sep + 1)
    if held == token then
      redis.call('SET', KEYS[i], node .. '|' .. token, 'PX', ttl)
      redis.call('ZADD', KEYS[i + 1], now + ttl, id)
    end
    table.insert(out, 1); table.insert(out, held)
    table.insert(out, 0); table.insert(out, string.sub(cur, 1, sep - 1))
  else
    if not swept[KEYS[i + 1]] then
      redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now)
      swept[KEYS[i + 1]] = true
    end
    local full = 0
    if limit < 0 or (limit > 0 and redis.call('ZCARD', KEYS[i + 1]) >= limit) then
      full = 1
    else
      redis.call('SET', KEYS[i], node .. '|' .. token, 'PX', ttl)
      redis.call('ZADD', KEYS[i + 1], now + ttl, id)
    end
    table.insert(out, 0); table.insert(out, '')
    table.insert(out, full); table.insert(out, '')
  end
end
return out
"""

# KEYS: peer1, ids1, ...  ARGV: node|token1, id1, ...  Frees each id still ours; returns
# how many were.
RELEASE_MANY = """
local freed = 0
for i = 1, #KEYS, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[i + 1], ARGV[i + 1])
    freed = freed + 1
  end
end
return freed
"""

# KEYS: qclock, queue1, queue2, ...  Removes and returns every queue's items, as one
# list per queue.
DRAIN_MANY = """
local out = {}
for i = 2, #KEYS do
  local items = redis.call('LRANGE', KEYS[i], 0, -1)
  if #items > 0 then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], KEYS[i])
  end
  table.insert(out, items)
end
return out
"""

# KEYS: peer1, ids1, peer2, ids2, ...  ARGV: ttl_ms, value1, id1, value2, id2, ...
# Renews our leases (re-creating them after a Redis restart); returns the 1-based
# positions of leases another holder took meanwhile.
REFRESH = NOW + """
local ttl = tonumber(ARGV[1])
local lost = {}
for i = 1, #KEYS, 2 do
  local value = ARGV[i + 1]
  local cur = redis.call('GET', KEYS[i])
  if (not cur) or cur == value then
    redis.call('SET', KEYS[i], value, 'PX', ttl)
    redis.call('ZADD', KEYS[i + 1], now + ttl, ARGV[i + 2])
  else
    table.insert(lost, (i + 1) / 2)
  end
end
return lost
"""

# KEYS: queue, qclock, sender counter, destination's lease.  ARGV: item, limit, keep_ms,
# sender_limit.  Returns 1 if queued, 0 if the destination's queue is full, -1 if the
# sender has queued too much within the last keep_ms (the counter is a sliding
# approximation), 2 if the destination holds a lease now (it came online since it was
# looked up: the caller routes the message again instead of queueing it where the
# destination, which already took its queue, would never look).
ENQUEUE = NOW + """
if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
local n = redis.call('LLEN', KEYS[1])
if n >= tonumber(ARGV[2]) then return 0 end
local sender_limit = tonumber(ARGV[4])
if sender_limit > 0 then
  local sent = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  if sent > sender_limit then return -1 end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if n == 0 then redis.call('ZADD', KEYS[2], 'NX', now, KEYS[1]) end
return 1
"""

# KEYS: qclock.  ARGV: expire_ms, max.  Removes due queues; returns {name, items, ...}.
SWEEP = NOW + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]),
                       'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, name in ipairs(due) do
  table.insert(out, name)
  table.insert(out, redis.call('LRANGE', name, 0, -1))
  redis.call('DEL', name)
  redis.call('ZREM', KEYS[1], name)
end
return out
"""

# KEYS: the lease of each destination.  ARGV: this node, the node channel prefix, the
# signalling.nodewire message carrying every destination's frames.  Looks every
# destination up and, when one other node holds them all (every flush of a two-node
# cluster), publishes the message to it in the same step: frames go to the node that
# holds their destination at that instant (decide_handover's ELSEWHERE -> FORWARD).
# Returns {1, subscribers that received it} when published; otherwise publishes nothing
# and returns {0, holder node of destination 1, of destination 2, ...} ('' for none),
# for the caller to split the message by node (or keep what is not elsewhere).
HANDOVER = """
local me, prefix = ARGV[1], ARGV[2]
local nodes = {0}
local same = true
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  local node = cur and string.sub(cur, 1, string.find(cur, '|', 1, true) - 1) or ''
  nodes[i + 1] = node
  if node ~= nodes[2] then same = false end
end
if same and nodes[2] ~= '' and nodes[2] ~= me then
  return {1, redis.call('PUBLISH', prefix .. nodes[2], ARGV[3])}
end
return nodes
"""
