"""Model builders: the 2019 study's three CNNs and emorec's own network.

Every builder returns an uncompiled ``keras.Model`` that takes raw pixel values (0..255) and
returns class probabilities; rescaling is a layer inside the model, so a saved model needs no
preprocessing code beside it. ``VARIANTS`` records what each variant expects as input.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from emorec.config import EMOREC_INPUT_SHAPE, EMOREC_MARGIN, LABELS, PRETRAIN_EPOCHS, FaceDefaults


@dataclass(frozen=True)
class Variant:
    """What a model family needs: its input (height, width, channels), whether it sees a face crop
    or the whole frame, and its training defaults."""

    name: str
    input_shape: tuple[int, int, int]
    face_crop: bool
    description: str
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    study_reported_accuracy: float | None = None  # the 2019 study's number (image-level split), for reference
    quantize_dense: bool = False  # ship Dense kernels as int8 (the 54x72 tuned network's Dense holds 6.3M weights)
    margin: float = FaceDefaults.margin  # context around a face crop, as a fraction of the box height


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("baseline", (32, 25, 3), False,
                "Keras CIFAR-10 example CNN on whole frames (the study's baseline)",
                epochs=10, batch_size=32, learning_rate=1e-4, optimizer="rmsprop", study_reported_accuracy=0.21),
        Variant("tuned_full", (32, 25, 3), False,
                "The study's Talos-tuned CNN on whole frames",
                epochs=30, batch_size=256, learning_rate=1e-3, optimizer="adam", study_reported_accuracy=0.48),
        Variant("tuned_mtcnn", (54, 72, 3), True,
                "The study's Talos-tuned CNN on aligned MTCNN face crops",
                epochs=100, batch_size=256, learning_rate=1e-3, optimizer="adam", study_reported_accuracy=0.70,
                quantize_dense=True),
        Variant("emorec", EMOREC_INPUT_SHAPE, True,
                "emorec's residual CNN: pretrained on FER2013, fine-tuned on aligned CK+ crops",
                epochs=PRETRAIN_EPOCHS, batch_size=128, learning_rate=2e-3, optimizer="adamw", margin=EMOREC_MARGIN),
    )
}

# The study's tuned configuration, in the names of its Talos search space.
STUDY_TUNED_PARAMS: dict = {
    "activation_1": "elu", "activation_2": "tanh", "activation_3": "tanh", "activation_4": "tanh",
    "activation_5": "elu", "neurons_layer_2": 32, "neurons_layer_3": 128, "neurons_layer_4": 64,
    "dropout": 0.4, "kernel_initializer": "glorot_uniform", "last_activation": "softmax",
}


def cifar10_cnn(input_shape: tuple[int, int, int], num_classes: int = len(LABELS)) -> keras.Model:
    """The Keras CIFAR-10 example network, as the study used it for its baseline."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="baseline",
    )


def tuned_cnn(input_shape: tuple[int, int, int], num_classes: int = len(LABELS), params: dict | None = None,
              name: str = "tuned") -> keras.Model:
    """The family the study tuned with Talos: two conv blocks and a dense layer, every activation,
    width, dropout and initializer a hyper-parameter (``STUDY_TUNED_PARAMS`` are its tuned values)."""
    p = {**STUDY_TUNED_PARAMS, **(params or {})}
    init = {"uniform": "random_uniform", "normal": "random_normal"}.get(p["kernel_initializer"],
                                                                        p["kernel_initializer"])
    conv = dict(kernel_size=3, kernel_initializer=init)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(32, padding="same", activation=p["activation_1"], **conv),
            layers.Conv2D(int(p["neurons_layer_2"]), activation=p["activation_2"], **conv),
            layers.MaxPooling2D(2),
            layers.Dropout(float(p["dropout"])),
            layers.Conv2D(int(p["neurons_layer_3"]), padding="same", activation=p["activation_3"], **conv),
            layers.Conv2D(int(p["neurons_layer_4"]), activation=p["activation_4"], **conv),
            layers.MaxPooling2D(2),
            layers.Dropout(float(p["dropout"])),
            layers.Flatten(),
            layers.Dense(512, activation=p["activation_5"], kernel_initializer=init),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation=p["last_activation"]),
        ],
        name=name,
    )


def _residual_block(x, filters: int, downsample: bool):
    """Two 3x3 convolutions with batch norm and a shortcut (1x1 projection when the shape changes)."""
    stride = 2 if downsample else 1
    shortcut = x
    if downsample or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Add()([x, shortcut])
    return layers.Activation("relu")(x)


def emorec_cnn(input_shape: tuple[int, int, int] = EMOREC_INPUT_SHAPE, num_classes: int = len(LABELS),
               stem: int = 32, widths: tuple[int, ...] = (64, 128, 256, 512), dropout: float = 0.4) -> keras.Model:
    """emorec's network: a ResNet for 48x48 gray faces, sized to train on two CPU cores.

    The stem pools to 24x24 at once: full-resolution blocks would cost half the compute for
    little gain on 48x48 faces. Width goes where it is cheap: the 3x3 last stage holds most of
    the 4.9M parameters for a quarter of the compute (the first version, three stages up to 192
    channels, underfit FER2013 at 66 % training accuracy).
    """
    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(stem, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(2)(x)
    for stage, filters in enumerate(widths):
        x = _residual_block(x, filters, downsample=stage > 0)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="emorec")


BUILDERS = {
    "baseline": lambda v, n: cifar10_cnn(v.input_shape, n),
    "tuned_full": lambda v, n: tuned_cnn(v.input_shape, n, name="tuned_full"),
    "tuned_mtcnn": lambda v, n: tuned_cnn(v.input_shape, n, name="tuned_mtcnn"),
    "emorec": lambda v, n: emorec_cnn(v.input_shape, n),
}


def build(variant: str, num_classes: int = len(LABELS)) -> keras.Model:
    """An uncompiled model of the named variant."""
    return BUILDERS[variant](VARIANTS[variant], num_classes)
