"""The orchestrator's own activities. ``activities.interfaces`` declares each one (name, input,
output) for the workflows; the modules here implement them, and ``activities.orchestrator``
builds them with their dependencies for the worker."""
