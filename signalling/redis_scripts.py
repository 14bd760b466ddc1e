"""Lua scripts that make each cluster directory and queue operation atomic in Redis.

Times come from Redis's own clock (``TIME``) so nodes need not agree on theirs.
"""

NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# One loop turn of admission (signalling.redis_admission): claims, releases and drains
# in the order they were submitted, each as if it were a call of its own.
# KEYS: qclock, then per operation: a claim: peer, ids, queue; a release: peer, ids;
# a drain: queue.
# ARGV: node, then per operation: 'c', token, key_limit (-1: the claiming node is full),
# peer_id, ttl_ms | 'r', node|token, peer_id | 'd'.
# A claim takes an id exactly when signalling.decisions.decide_claim admits (free and not
# at the limit, or held by the same token: a takeover; a key's limit counts the claims
# and releases before it) and answers what it saw for that decision: {held 1|0, holder
# token, at_limit 1|0, holder node, queued 1|0}; queued is 1 when the id was taken and
# its offline queue holds something (asked only while any queue waits: the clock lists
# every queue that holds items). Without a key limit a free id is taken and its holder
# seen in one SET NX GET. A release frees the id if its lease is still node|token and
# answers 1 if it was: the lease is taken with GETDEL, and one that turns out to be
# another holder's is put back as it was (its expiry is its id's score in ids, written
# with it by every claim and renewal). A drain removes and answers the queue's items.
ADMIT = NOW + """
local node = ARGV[1]
local out = {}
local swept = {}
local waiting = nil
local k, a = 2, 2
while a <= #ARGV do
  local op = ARGV[a]
  if op == 'c' then
    local token, limit, id = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
    local ttl = tonumber(ARGV[a + 4])
    local peer, ids = KEYS[k], KEYS[k + 1]
    local value = node .. '|' .. token
    local cur, taken
    if limit == 0 then
      cur = redis.call('SET', peer, value, 'NX', 'GET', 'PX', ttl)
    else
      cur = redis.call('GET', peer)
    end
    local answer
    if cur then
      local sep = string.find(cur, '|', 1, true)
      local held = string.sub(cur, sep + 1)
      if held == token then
        redis.call('SET', peer, value, 'PX', ttl)
        redis.call('ZADD', ids, now + ttl, id)
        taken = true
      end
      answer = {1, held, 0, string.sub(cur, 1, sep - 1), 0}
    else
      if not swept[ids] then
        redis.call('ZREMRANGEBYSCORE', ids, '-inf', now)
        swept[ids] = true
      end
      local full = 0
      if limit == 0 then
        redis.call('ZADD', ids, now + ttl, id)
        taken = true
      elseif limit < 0 or (limit > 0 and redis.call('ZCARD', ids) >= limit) then
        full = 1
      else
        redis.call('SET', peer, value, 'PX', ttl)
        redis.call('ZADD', ids, now + ttl, id)
        taken = true
      end
      answer = {0, '', full, '', 0}
    end
    if taken then
      if waiting == nil then waiting = redis.call('ZCARD', KEYS[1]) > 0 end
      if waiting and redis.call('EXISTS', KEYS[k + 2]) == 1 then answer[5] = 1 end
    end
    out[#out + 1] = answer
    k, a = k + 3, a + 5
  elseif op == 'r' then
    local freed = 0
    local cur = redis.call('GETDEL', KEYS[k])
    if cur == ARGV[a + 1] then
      redis.call('ZREM', KEYS[k + 1], ARGV[a + 2])
      freed = 1
    elseif cur then
      local expiry = redis.call('ZSCORE', KEYS[k + 1], ARGV[a + 2])
      if expiry and tonumber(expiry) > now then
        redis.call('SET', KEYS[k], cur, 'PXAT', expiry)
      end
    end
    out[#out + 1] = freed
    k, a = k + 2, a + 3
  elseif op == 'd' then
    local items = redis.call('LRANGE', KEYS[k], 0, -1)
    if #items > 0 then
      redis.call('DEL', KEYS[k])
      redis.call('ZREM', KEYS[1], KEYS[k])
    end
    out[#out + 1] = items
    k, a = k + 1, a + 1
  else
    return redis.error_reply('ADMIT: unknown operation ' .. tostring(op))
  end
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
