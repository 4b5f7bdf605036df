"""Abuse controls: per-sender quotas, same-content fan-out, per-address limits, memory shedding."""
