"""emorec stage 1b: faces from the wild, with cleaner labels and other people.

Stage 1 (``finetune.pretrain_fer``) learned FER2013's single, noisy labels. This stage continues from
its network on what transfers to people it has never seen:

- FER+ votes (ten annotators per face) as soft targets instead of FER2013's one label per face;
- the training people of LFW expressions (news photos), cropped as the app crops faces;
- domain-balanced batches (a fixed share of each batch from each source, however large it is);
- photometric augmentation for phone and film photos: low light, gamma, blur, sensor noise.

FER2013's held-out tenth (``train.fer_holdout_split``), LFW's validation people
(``data.lfw_split``) and the London set are never trained on: stage 2 chooses its recipe on them.
Setup -> Prepare data -> Build -> Train, as in the keras-io examples.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

from emorec.config import CACHE_DIR, LABELS, SEED, WILD_EPOCHS, WILD_LEARNING_RATE, WILD_LFW_SHARE, WILD_STEPS
from emorec.crops import cached_model_inputs, main_face_crops
from emorec.data import ferplus_targets, ferplus_votes_for, image_digests, label_indices, lfw_split, load_dataset
from emorec.files import atomic_write_text, write_digests
from emorec.models import VARIANTS
from emorec.train import augmentation, fer_holdout_split, fit, save_model, set_seed, without_copies

VARIANT = VARIANTS["emorec"]
BATCH = 128

# ---------------------------------------------------------------------------------------------
# Setup


class RandomGamma(layers.Layer):
    """Gamma correction with an exponent drawn per image from [1 / (1 + factor), 1 + factor]: the
    dark or washed-out midtones of phone photos in dim rooms and of graded film stills."""

    def __init__(self, factor: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        log_range = float(np.log1p(self.factor))
        shape = (keras.ops.shape(images)[0], 1, 1, 1)
        gamma = keras.ops.exp(keras.random.uniform(shape, -log_range, log_range, seed=self.seed_generator))
        return 255.0 * keras.ops.power(keras.ops.clip(images / 255.0, 0.0, 1.0), gamma)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def photometric_augmentation() -> keras.Sequential:
    """``train.augmentation``'s flips, turns, zoom, shifts and light, then what phone and film photos
    add: gamma, blur (half of the faces) and sensor noise (GaussianNoise takes a deviation up to 1:
    applied on the 0..1 scale)."""
    return keras.Sequential([*augmentation().layers,
                             RandomGamma(0.5, seed=SEED),
                             layers.RandomGaussianBlur(factor=0.5, kernel_size=3, sigma=1.0, seed=SEED),
                             layers.Rescaling(1 / 255), layers.GaussianNoise(0.025, seed=SEED), layers.Rescaling(255)],
                            name="photometric_augmentation")


# ---------------------------------------------------------------------------------------------
# Prepare data


@dataclass(frozen=True)
class Domain:
    """One source of faces: model inputs, soft targets (rows summing to 1) and sample weights."""

    name: str
    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    digests: tuple[str, ...] = ()  # files.content_digest of each image: what the model trained on

    def __len__(self) -> int:
        return len(self.x)


def balancing_weights(targets: np.ndarray, power: float = 0.3) -> np.ndarray:
    """Per-face weights from the inverse frequency of each face's majority class, softened by
    ``power`` (1 = fully balanced), averaging 1."""
    majority = targets.argmax(axis=1)
    counts = np.bincount(majority, minlength=targets.shape[1]).astype(float)
    weights = (len(majority) / (np.count_nonzero(counts) * counts[majority])) ** power
    return (weights / weights.mean()).astype(np.float32)


def one_hot(labels: pd.Series) -> np.ndarray:
    return np.eye(len(LABELS), dtype=np.float32)[label_indices(labels)]


def ferplus_domains(ferplus_csv: Path, fer_train_dir: Path) -> tuple[Domain, Domain]:
    """FER2013 train's faces with their FER+ votes: the part stage 1 trained on, and the held-out
    tenth stage 1 never saw (for validation; without the copies of training faces FER2013 holds);
    faces FER+ did not match, or called unknown or not a face, are left out."""
    manifest = load_dataset(fer_train_dir)
    x = cached_model_inputs(manifest, VARIANT.input_shape, face_crop=False)
    digests = np.array(image_digests(manifest))
    fit_rows, held_out = fer_holdout_split(label_indices(manifest["label"]))
    held_out = without_copies(held_out, fit_rows, digests)
    targets, usable = ferplus_targets(ferplus_votes_for(manifest, ferplus_csv))

    def domain(name: str, rows: np.ndarray) -> Domain:
        rows = rows[usable[rows]]
        return Domain(name, x[rows], targets[rows].astype(np.float32), balancing_weights(targets[rows]),
                      tuple(digests[rows]))

    return domain("ferplus", np.sort(fit_rows)), domain("ferplus-heldout", np.sort(held_out))


def lfw_domains(lfw_dir: Path) -> tuple[Domain, Domain]:
    """LFW expressions split by person: the training people, and the validation people."""
    manifest = load_dataset(lfw_dir)
    x, y = main_face_crops(manifest, VARIANT.input_shape, VARIANT.margin)[0], one_hot(manifest["label"])
    train, validation = lfw_split(manifest)
    return (Domain("lfw", x[train], y[train], balancing_weights(y[train]),
                   tuple(np.array(image_digests(manifest))[train])),
            Domain("lfw-validation", x[validation], y[validation], np.ones(len(validation), np.float32)))


def domain_balanced(domains: list[Domain], shares: list[float], faces: int,
                    augment: keras.Sequential) -> tf.data.Dataset:
    """``faces`` faces per pass, each drawn from domain i with probability ``shares[i]`` (every
    domain reshuffled and repeated on its own), in augmented batches."""
    sources = [tf.data.Dataset.from_tensor_slices((d.x, d.y, d.weight))
               .shuffle(len(d), seed=SEED + i, reshuffle_each_iteration=True).repeat()
               for i, d in enumerate(domains)]
    mixed = tf.data.Dataset.sample_from_datasets(sources, weights=shares, seed=SEED).take(faces).batch(BATCH)
    return (mixed.map(lambda x, y, w: (augment(tf.cast(x, tf.float32), training=True), y, w),
                      num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def plain(domain: Domain) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((domain.x.astype(np.float32), domain.y)).batch(512)


# ---------------------------------------------------------------------------------------------
# Train


def training_images_path(network: Path) -> Path:
    """Where stage 1b records the images it trained on, beside its network."""
    return network.with_name("wild-training-images.txt.gz")


def pretrain_wild(pretrained: Path, ferplus_csv: Path, fer_train_dir: Path, lfw_dir: Path, out: Path,
                  epochs: int = WILD_EPOCHS, steps: int = WILD_STEPS, learning_rate: float = WILD_LEARNING_RATE,
                  lfw_share: float = WILD_LFW_SHARE, run_dir: Path | None = None) -> dict:
    """Continue ``pretrained`` on FER+ and LFW's training people, write the network to ``out`` and
    its history and data counts beside it; resumable (checkpoints in ``run_dir``)."""
    set_seed(deterministic=False)  # XLA, as stage 1: resumable rather than repeatable
    ferplus, ferplus_heldout = ferplus_domains(ferplus_csv, fer_train_dir)
    lfw, lfw_validation = lfw_domains(lfw_dir)
    train = domain_balanced([ferplus, lfw], [1 - lfw_share, lfw_share], steps * BATCH, photometric_augmentation())

    model = keras.models.load_model(pretrained, compile=False)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate / 10, epochs * steps, warmup_target=learning_rate,
                                                      warmup_steps=steps // 2)
    model.compile(optimizer=keras.optimizers.AdamW(schedule), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], jit_compile=True)
    start = hashlib.sha256(pretrained.read_bytes()).hexdigest()[:12]  # another stage 1: another run, never resumed
    run_dir = run_dir or (CACHE_DIR / "runs" / "emorec"
                          / f"wild-{start}-{epochs}x{steps}-{learning_rate:g}-{lfw_share:g}")
    fit(model, train, plain(ferplus_heldout), epochs, run_dir, patience=None)

    save_model(model, out)
    write_digests(training_images_path(out), ferplus.digests + lfw.digests)
    history = json.loads((run_dir / "history.json").read_text())
    scores = {d.name: round(float(model.evaluate(plain(d), verbose=0)[1]), 4)
              for d in (ferplus_heldout, lfw_validation)}
    stats = {"faces": {d.name: len(d) for d in (ferplus, ferplus_heldout, lfw, lfw_validation)},
             "shares": {"ferplus": 1 - lfw_share, "lfw": lfw_share}, "epochs": epochs, "steps": steps, "batch": BATCH,
             "learning_rate": learning_rate, "wall_seconds": round(sum(row["seconds"] for row in history)),
             "majority_vote_accuracy": scores}
    atomic_write_text(out.with_name("wild-history.json"), json.dumps(history, indent=1))
    atomic_write_text(out.with_name("wild-stats.json"), json.dumps(stats, indent=1))
    return stats
