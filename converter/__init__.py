"""Keras -> TFLite variants (float32, float16, dynamic-range int8, full-integer int8) and their proof."""
