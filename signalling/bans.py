"""Address bans as this node knows them: address -> until (epoch seconds) and reason."""

from __future__ import annotations


class BanList:
    """Banned addresses with their end times; expired bans are dropped as they are met."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._reasons: dict[str, str] = {}

    def ban(self, address: str, until: float, reason: str = "") -> None:
        """Ban ``address`` until ``until``."""
        self._until[address] = until
        self._reasons[address] = reason

    def unban(self, address: str) -> None:
        """Lift the ban on ``address`` (if any)."""
        self._until.pop(address, None)
        self._reasons.pop(address, None)

    def replace(self, bans: dict[str, float], reasons: dict[str, str] | None = None) -> None:
        """Take the stored bans as the whole truth (reconciliation)."""
        self._until = dict(bans)
        self._reasons = {a: r for a, r in (reasons or {}).items() if a in self._until}

    def entries(self, now: float) -> dict[str, tuple[float, str]]:
        """The bans in force at ``now``: address -> (until, reason)."""
        return {address: (until, self._reasons.get(address, ""))
                for address, until in self._until.items() if until > now}

    def is_banned(self, address: str, now: float) -> bool:
        """Tell whether ``address`` is banned at ``now``."""
        until = self._until.get(address)
        if until is None:
            return False
        if until <= now:
            del self._until[address]
            self._reasons.pop(address, None)
            return False
        return True

    def __len__(self) -> int:
        return len(self._until)
