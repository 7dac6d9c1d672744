"""Benchmarks (``emorec.bench``): latency of every shipped model, as served."""

from __future__ import annotations

from emorec import registry
from tests.conftest import save_tiny_model


def test_bench_latency_measures_every_shipped_model_as_served(tmp_path):
    from emorec import bench

    save_tiny_model(tmp_path, "plain", convolutional=True)
    save_tiny_model(tmp_path, "flipped", convolutional=True)
    registry.update_card("flipped", {"mirror_averaged": True}, tmp_path)
    (tmp_path / "card_only").mkdir()
    (tmp_path / "card_only" / "card.json").write_text('{"classes": ["happiness"], "input_shape": [48, 48, 1]}')
    table = bench.bench_latency(True, tmp_path).set_index("model")
    assert table.loc["plain", "ms per face"] > 0 and table.loc["flipped", "ms per face"] > 0
    assert "unavailable" in table.loc["card_only", "measured"]
    card = registry.read_card("flipped", tmp_path)
    assert card.latency_ms_per_face == table.loc["flipped", "ms per face"] and "cores" in card.latency_measured
