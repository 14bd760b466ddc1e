"""The session admin's ordering while searching: no index can serve it (pure)."""

from __future__ import annotations

from django.db.models import OrderBy

from signalling.admin import search_ordering


def test_connected_at_becomes_an_expression_in_either_direction() -> None:
    out = search_ordering(["-connected_at", "peer_id", "connected_at", "-pk"])
    assert isinstance(out[0], OrderBy) and out[0].descending
    assert isinstance(out[2], OrderBy) and not out[2].descending
    assert out[1] == "peer_id" and out[3] == "-pk"
    assert "connected_at" in repr(out[0].expression) and "Value" in repr(out[0].expression)


def test_other_orderings_are_kept() -> None:
    assert search_ordering(["-last_at", "api_key"]) == ["-last_at", "api_key"]
