"""Emo7ion: the mood of a crowd, read on the device, with nothing that identifies anyone leaving it."""

from emo7ion.core.service.version import version as _version

__version__ = _version()
