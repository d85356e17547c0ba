"""``emo7ion demo``: a local broker, simulated camera crowds, the aggregator and the live dashboard."""
