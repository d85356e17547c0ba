"""The four TFLite variants a device might want, converted from one Keras model.

``int8`` is full-integer (int8 weights, activations, input and output tensors), calibrated on faces
prepared by ``core.faces``; it is the device default.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from emo7ion.core.service.errors import UserError

log = logging.getLogger(__name__)

VARIANTS = ("float32", "float16", "dynamic-int8", "int8")


class ConversionError(UserError, RuntimeError):
    """The converter could not turn the model into the asked variant (e.g. an unsupported layer)."""


def convert(model, variant: str, calibration: np.ndarray | None = None) -> bytes:
    """The ``.tflite`` bytes of ``model`` as ``variant``; ``int8`` needs float calibration faces."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("the int8 variant needs calibration faces")
        samples = np.asarray(calibration, dtype=np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(len(samples)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):  # the exporter prints every traced tensor
            return bytes(converter.convert())
    except Exception as error:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise ConversionError(f"{variant}: the model cannot be converted: {str(error).strip()[:2000]}") from error
    finally:
        log.debug("converter output for %s:\n%s", variant, chatter.getvalue())
