"""Emo7ion: the mood of a crowd, read on the device, with nothing that identifies anyone leaving it."""

__version__ = "0.1.0"
