"""The camera agent that runs on each device: frames in, anonymous emotion counts out over MQTT."""
