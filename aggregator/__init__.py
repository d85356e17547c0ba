"""The central service: subscribes to every camera, stores windows, computes venue mood, serves it."""
