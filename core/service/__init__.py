"""The service kit: what the agent, the aggregator and the commands share to run as programs (typed settings and
their layers, the broker connection and its errors, one-line user errors, stopping on signals, the per-user data
dir, shipped resources, the version). It never imports the contract half of ``core`` and the contract never
imports it: a model or a payload does not depend on how a service is run."""
