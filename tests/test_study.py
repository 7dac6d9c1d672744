"""The study's variants (``emorec.study``): every recipe has a training-code fingerprint."""

from __future__ import annotations


def test_every_recipe_has_a_training_code_fingerprint():
    from emorec import finetune, study

    prints = ({study.training_code(name) for name in ("baseline", "tuned_full", "tuned_mtcnn")}
              | {finetune.training_code()})
    assert len(prints) == 3  # the two tuned variants share their network and recipe
