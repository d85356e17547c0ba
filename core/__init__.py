"""The ground floor, in two halves that never import each other.

- The contract (this package): labels (``emotions``), the face crop (``faces``), the TFLite runner (``runtime``),
  model provenance (``provenance``) and every MQTT topic and payload (``messages``): what training, conversion,
  devices and the centre must agree on. Nothing here imports TensorFlow or any other part of emo7ion.
- The service kit (``core.service``): what a long-running program needs and a model never does: typed settings,
  the broker connection and its errors, one-line user errors, stopping on signals, paths, shipped resources,
  the version.
"""
