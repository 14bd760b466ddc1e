"""Address bans as this node knows them: address -> until (epoch seconds)."""

from __future__ import annotations


class BanList:
    """Banned addresses with their end times; expired bans are dropped as they are met."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def ban(self, address: str, until: float) -> None:
        """Ban ``address`` until ``until``."""
        self._until[address] = until

    def unban(self, address: str) -> None:
        """Lift the ban on ``address`` (if any)."""
        self._until.pop(address, None)

    def replace(self, bans: dict[str, float]) -> None:
        """Take the stored bans as the whole truth (reconciliation)."""
        self._until = dict(bans)

    def is_banned(self, address: str, now: float) -> bool:
        """Tell whether ``address`` is banned at ``now``."""
        until = self._until.get(address)
        if until is None:
            return False
        if until <= now:
            del self._until[address]
            return False
        return True

    def __len__(self) -> int:
        return len(self._until)
