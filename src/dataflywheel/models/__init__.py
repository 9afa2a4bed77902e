"""Models: candidates (registry), the tool-call codec, the local engine, clients and deployments."""
