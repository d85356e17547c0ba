"""Mosquitto configuration for Emo7ion: authenticated, per-camera ACLs, TLS.

``init_broker`` writes a ready-to-run broker directory; ``add_camera``, ``add_aggregator`` and
``add_viewer`` give identities their credentials and ACL rules; ``BrokerLayout.load(dir).mosquitto()``
runs it (``runner.Mosquitto``)."""

from emo7ion.broker_config.accounts import add_aggregator, add_camera, add_viewer
from emo7ion.broker_config.credentials import Credentials
from emo7ion.broker_config.layout import BrokerLayout, init_broker

__all__ = ["BrokerLayout", "Credentials", "add_aggregator", "add_camera", "add_viewer", "init_broker"]
