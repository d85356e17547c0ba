"""Mosquitto configuration for Emo7ion: authenticated, per-camera ACLs, TLS."""
