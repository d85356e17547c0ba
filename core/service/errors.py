"""Failures that are the user's to fix (credentials a broker refuses, a camera library that is not installed, a
port another program holds, detector weights cut short, an int8 model that lost too much accuracy): they are
raised, never printed where they happen, and ``emo7ion/cli.py`` alone turns them into one line and exit status 2,
no traceback. A service that meets one after it started (a broker refusing its credentials) stops and
re-raises it in the main thread, so it ends the same way.

The family, each a subclass of :class:`UserError` beside the built-in it used to be (so ``except ValueError``
elsewhere still holds): ``settings.ConfigError`` (a setting, named), ``broker_errors.BrokerRefusedError``,
``broker_config.runner.BrokerError`` (and ``CertificateError``), ``edge.detect.base.DetectorError``,
``edge.sources.base.SourceUnavailable``, ``edge.sources.video.RecordingError``, ``edge.outbox.OutboxError``,
``converter.convert.ParityError``, ``converter.variants.ConversionError``, ``training.data.DataError``.
The contract half of core (``core.runtime.ModelError``, ``core.messages.MessageError``) may not import this
service kit; the CLI names those two beside UserError.
"""


class UserError(Exception):
    """Raised with a message that names the file, flag or value at fault and what to do about it."""
