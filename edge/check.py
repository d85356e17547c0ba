"""``emo7ion edge check``: each thing the agent needs, tried once, in the order it needs them."""

from __future__ import annotations

import threading

from emo7ion.edge.config import EdgeConfig


def check(config: EdgeConfig, timeout: float = 10.0) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) for model, detector, source and broker; stops at the first failure."""
    results: list[tuple[str, bool, str]] = []
    for name, step in (("model", _model), ("detector", _detector), ("source", _source), ("broker", _broker)):
        try:
            detail = step(config, timeout)
            results.append((name, True, detail))
        except Exception as error:  # report any failure as this step's, then stop
            results.append((name, False, str(error)))
            break
    return results


def _model(config: EdgeConfig, timeout: float) -> str:
    from emo7ion.core.runtime import EmotionClassifier

    classifier = EmotionClassifier(config.model, num_threads=config.threads,
                                   allow_unversioned=config.allow_unversioned)
    meta = classifier.model_id
    return (f"{config.model} ({meta['variant']}, version {meta['version']}, {classifier.input_dtype} input, "
            f"{classifier.interpreter_name})")


def _detector(config: EdgeConfig, timeout: float) -> str:
    from emo7ion.edge.detect import registry

    detector = registry.create(config.detector)
    return f"{config.detector.get('type')} ({detector.name})"


def _source(config: EdgeConfig, timeout: float) -> str:
    from emo7ion.edge.sources.capture import make_source

    source = make_source(config.source)
    source.open()
    try:
        frame = source.read()
        if frame is None:
            raise RuntimeError(f"{config.source.kind} source opened but gave no frame")
        return f"{config.source.kind} {config.source.path or ''} gives {frame.shape[1]}x{frame.shape[0]} frames"
    finally:
        source.close()


def _broker(config: EdgeConfig, timeout: float) -> str:
    if not config.broker.url:
        return f"none configured: the windows go to {config.out} only"
    from emo7ion.core.service import broker_errors

    client = config.broker.client(f"{config.camera}-check")
    outcome: dict = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        outcome["reason"] = reason_code
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(config.broker.host, config.broker.port, keepalive=10)
    except OSError as error:
        raise RuntimeError(broker_errors.describe_error(config.broker.host, config.broker.port, error,
                                                        config.broker.tls)) from error
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise RuntimeError(f"no answer from {config.broker.url} within {timeout:.0f} s")
        if outcome["reason"].is_failure:
            raise RuntimeError(broker_errors.describe_refusal(config.broker.host, config.broker.port,
                                                              outcome["reason"], config.broker.username))
        return f"{config.broker.url} accepted {config.broker.username or 'anonymous'}"
    finally:
        client.disconnect()
        client.loop_stop()
