"""Network builders (``emorec.models``): every variant compiles and fits, and the CLI offers each."""

from __future__ import annotations

import numpy as np
import pytest

from emorec.config import LABELS
from emorec.models import VARIANTS, build
from emorec.train import compile_model, make_dataset


@pytest.mark.parametrize("name", list(VARIANTS))
def test_builders_compile_and_fit_a_tiny_batch(name):
    variant = VARIANTS[name]
    model = build(name)
    assert model.input_shape[1:] == variant.input_shape and model.output_shape[-1] == len(LABELS)
    compile_model(model, variant.optimizer, variant.learning_rate)
    x = np.random.default_rng(0).integers(0, 255, (8, *variant.input_shape)).astype(np.uint8)
    y = np.arange(8) % len(LABELS)
    history = model.fit(make_dataset(x, y, 4), epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    probabilities = model.predict(x.astype(np.float32), verbose=0)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)


def test_cli_knows_every_variant():
    from emorec.config import VARIANT_NAMES

    assert list(VARIANT_NAMES) == list(VARIANTS)
