"""signalling.metrics.get_metrics: the counters of whichever node is this process's."""

from __future__ import annotations

import pytest

from signalling import metrics, node


def test_the_counters_are_the_current_nodes_whether_or_not_it_was_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert metrics.get_metrics() is node.get_node().metrics
    other = node.Node("other-node", "", "", 1.0)
    monkeypatch.setattr(node, "_node", other)
    assert metrics.get_metrics() is other.metrics  # looked up at each call, not kept
