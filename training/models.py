"""The two classifiers, each built from a hyperparameter set so keras-tuner can search it.

``seed`` is the architecture the original Emo7ion project reported; ``edge`` is our compact design for
int8 on a Raspberry Pi CPU (plain conv, batch norm, ReLU, max-pool, dense: ops every LiteRT int8
kernel set has).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from emo7ion.core import emotions, faces

EDGE_MAX_MACS = 60_000_000
EDGE_MAX_PARAMS = 2_000_000
EDGE_L_MAX_MACS = 240_000_000
EDGE_L_WIDTHS = (64, 96, 192, 320)
EDGE_L_DENSE = 512
BN_MOMENTUM = 0.9


class HParams:
    """One view over a keras-tuner ``HyperParameters`` (searching) or a plain dict (training).

    The builders ask for each knob once, with its search space and default, so the space and the
    defaults live in one place.
    """

    def __init__(self, source: Any = None):
        self.source = source if source is not None else {}
        self.used: dict[str, Any] = {}

    def choice(self, name: str, values: list, default: Any) -> Any:
        if hasattr(self.source, "Choice"):
            value = self.source.Choice(name, values, default=default)
        else:
            value = self.source.get(name, default)
            if value not in values:
                raise ValueError(f"hyperparameter {name}={value!r} is not one of {values}")
        self.used[name] = value
        return value


def _keras():
    import keras

    return keras


def _conv_bn_relu(keras, x, filters: int, strides: int = 1, name: str = "", momentum: float = 0.99):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_edge(hp: Any = None):
    """Compact VGG-style net: ~57 M MACs and ~0.95 M parameters per 48x48 face at the defaults."""
    p = HParams(hp)
    widths = (p.choice("stem_filters", [24, 32], 32), p.choice("block2_filters", [32, 40, 48], 48),
              p.choice("block3_filters", [64, 80, 96], 96), p.choice("block4_filters", [128, 144, 160], 160))
    dense = p.choice("dense_units", [128, 256, 384], 256)
    drop_conv = p.choice("dropout_conv", [0.0, 0.1, 0.2, 0.3], 0.1)
    drop_dense = p.choice("dropout_dense", [0.2, 0.3, 0.4, 0.5], 0.4)
    bn = _bn_momentum(p)
    model = _vgg_net(widths, dense, drop_conv, drop_dense, bn, name="emo7ion_edge")
    model.hparams = dict(p.used) | {"bn_momentum": bn}
    return model


def build_edge_l(hp: Any = None):
    """``edge`` with every width doubled (~228 M MACs): for a Raspberry Pi 5, which has the time. Not searched."""
    p = HParams(hp)
    bn = _bn_momentum(p)
    model = _vgg_net(EDGE_L_WIDTHS, EDGE_L_DENSE, 0.1, 0.4, bn, name="emo7ion_edge_l")
    model.hparams = {"widths": list(EDGE_L_WIDTHS), "dense_units": EDGE_L_DENSE, "bn_momentum": bn}
    return model


def _bn_momentum(p: HParams) -> float:
    # Not searched. 0.9 (PyTorch's 0.1) measured better than Keras's 0.99 (model card); 0.5 lets a run of a
    # few dozen steps (tests, smoke checks) settle its statistics.
    return p.source.get("bn_momentum", BN_MOMENTUM) if isinstance(p.source, dict) else BN_MOMENTUM


def _vgg_net(widths: tuple[int, int, int, int], dense: int, drop_conv: float, drop_dense: float, bn: float,
             name: str):
    keras = _keras()
    stem, *blocks = widths
    inputs = keras.Input((faces.FACE_SIZE, faces.FACE_SIZE, 1), name="face")
    x = _conv_bn_relu(keras, inputs, stem, name="stem", momentum=bn)
    x = _conv_bn_relu(keras, x, stem, strides=2, name="down", momentum=bn)  # 48 -> 24, a learned downsample
    for index, filters in enumerate(blocks, start=2):
        x = _conv_bn_relu(keras, x, filters, name=f"block{index}a", momentum=bn)
        x = _conv_bn_relu(keras, x, filters, name=f"block{index}b", momentum=bn)
        x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
        if drop_conv:
            x = keras.layers.Dropout(drop_conv, name=f"block{index}_drop")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # 3x3 keeps where the mouth is relative to the eyes
    x = keras.layers.Dense(dense, use_bias=False, name="fc")(x)
    x = keras.layers.BatchNormalization(momentum=bn, name="fc_bn")(x)
    x = keras.layers.ReLU(name="fc_relu")(x)
    x = keras.layers.Dropout(drop_dense, name="fc_drop")(x)
    outputs = keras.layers.Dense(emotions.NUM_CLASSES, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name=name)


def build_seed(hp: Any = None):
    """The original project's CNN: conv blocks of 64, 128, 512, 512 filters, dense 256 and 512."""
    keras = _keras()
    p = HParams(hp)
    f3 = p.choice("block3_filters", [256, 384, 512], 512)
    f4 = p.choice("block4_filters", [256, 384, 512], 512)
    units1 = p.choice("dense1_units", [128, 256, 512], 256)
    units2 = p.choice("dense2_units", [256, 512, 1024], 512)
    drop_conv = p.choice("dropout_conv", [0.1, 0.25, 0.4], 0.25)
    drop_dense = p.choice("dropout_dense", [0.25, 0.4, 0.5], 0.25)
    kernels = (3, 5, 3, 3)

    inputs = keras.Input((faces.FACE_SIZE, faces.FACE_SIZE, 1), name="face")
    x = inputs
    for index, (filters, kernel) in enumerate(zip((64, 128, f3, f4), kernels), start=1):
        x = keras.layers.Conv2D(filters, kernel, padding="same", name=f"block{index}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{index}_bn")(x)
        x = keras.layers.ReLU(name=f"block{index}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
        x = keras.layers.Dropout(drop_conv, name=f"block{index}_drop")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate((units1, units2), start=1):
        x = keras.layers.Dense(units, name=f"fc{index}")(x)
        x = keras.layers.BatchNormalization(name=f"fc{index}_bn")(x)
        x = keras.layers.ReLU(name=f"fc{index}_relu")(x)
        x = keras.layers.Dropout(drop_dense, name=f"fc{index}_drop")(x)
    outputs = keras.layers.Dense(emotions.NUM_CLASSES, activation="softmax", name="emotion")(x)
    model = keras.Model(inputs, outputs, name="emo7ion_seed")
    model.hparams = dict(p.used)
    return model


BUILDERS: dict[str, Callable] = {"edge": build_edge, "edge-l": build_edge_l, "seed": build_seed}


def build(name: str, hp: Any = None):
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(BUILDERS)}")
    return BUILDERS[name](hp)


def count_macs(model) -> int:
    """Multiply-accumulates per face of the conv and dense layers (what dominates on a CPU)."""
    keras = _keras()
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            groups = getattr(layer, "groups", 1) or 1
            total += h * w * c_out * kh * kw * c_in // groups
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return int(total)


def describe(model) -> Mapping[str, int]:
    return {"parameters": int(model.count_params()), "macs": count_macs(model)}
