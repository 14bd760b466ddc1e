"""Peer sessions: one row per registration, written off the relay path."""

from __future__ import annotations

from django.db import models


class PeerSession(models.Model):
    """One peer id's time on one node, from OPEN to close."""

    # Indexed below: api_key by (api_key, connected_at) alone, peer_id and node each by a
    # plain index (``db_index`` adds a second, LIKE-pattern one on PostgreSQL that no
    # query uses: the admin's prefix search has its UPPER(peer_id) index).
    api_key = models.CharField(max_length=64)
    peer_id = models.CharField(max_length=255)
    node = models.CharField(max_length=100)
    transport = models.CharField(max_length=16, default="websocket")
    remote_addr = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    client_version = models.CharField(max_length=32, blank=True)
    connected_at = models.DateTimeField(db_index=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True, db_index=True)
    close_reason = models.CharField(max_length=100, blank=True)
    messages_in = models.PositiveBigIntegerField(default=0)
    messages_out = models.PositiveBigIntegerField(default=0)
    heartbeats = models.PositiveBigIntegerField(default=0)  # of messages_in

    class Meta:
        ordering = ["-connected_at"]
        indexes = [models.Index(fields=["api_key", "connected_at"]),
                   models.Index(fields=["peer_id"], name="session_peer_id"),
                   models.Index(fields=["node"], name="session_node")]

    def __str__(self) -> str:
        return f"{self.peer_id} @ {self.node}"

    @property
    def live(self) -> bool:
        """True while the session has no recorded end."""
        return self.disconnected_at is None


class LimitHit(models.Model):
    """How often a limit refused something, per key (empty key: before a key was known)."""

    api_key = models.CharField(max_length=64, blank=True)
    limit = models.CharField(max_length=32)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "limit"],
                                               name="unique_limit_per_key")]
        ordering = ["-last_at"]

    def __str__(self) -> str:
        return f"{self.limit} ({self.api_key or 'no key'}): {self.count}"


class UsageHour(models.Model):
    """Usage of one key on one node for the sessions that connected in one hour.

    Kept by the session writer in the same transaction as the sessions themselves: a
    session counts in ``connections`` when its row is inserted, and its message counters
    are added when it ends. So the totals of every key are a sum over this small table
    plus the counters of the sessions still open, and they outlive pruned sessions.
    ``peak_live`` is the most peers of the key this node held at once in the hour.
    """

    hour = models.DateTimeField()
    api_key = models.CharField(max_length=64)
    node = models.CharField(max_length=100)
    connections = models.PositiveBigIntegerField(default=0)
    messages_in = models.PositiveBigIntegerField(default=0)
    messages_out = models.PositiveBigIntegerField(default=0)
    heartbeats = models.PositiveBigIntegerField(default=0)
    peak_live = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "api_key", "node"],
                                               name="unique_usage_hour")]
        indexes = [models.Index(fields=["api_key", "hour"], name="usage_key_hour")]
        ordering = ["-hour"]

    def __str__(self) -> str:
        return f"{self.api_key} @ {self.node}, {self.hour:%Y-%m-%d %H:00}"
