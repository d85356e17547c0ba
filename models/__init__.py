"""Released, trained artifacts: the int8 and float16 classifiers a device loads (see MODEL_CARD.md)."""
