"""The published limits and how a refusal speaks: 429 problem+json with RateLimit headers.

The header syntax is draft-ietf-httpapi-ratelimit-headers-10 (Structured Fields):
`RateLimit-Policy: "uploads";q=60;w=60` describes a quota, and `RateLimit: "uploads";r=0;t=12`
what is left of it and in how many seconds more becomes available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ephemeral.config import RateLimitSettings, Settings
from ephemeral.errors import ServiceError

DRAFT = "draft-ietf-httpapi-ratelimit-headers-10"
# Quota units the draft registers; ours that are not go in a vendor parameter instead.
REGISTERED_UNITS = {"requests", "content-bytes", "concurrent-requests"}


@dataclass(frozen=True)
class Policy:
    name: str
    quota: int
    window: int | None  # seconds; None for a level (jobs in flight, bytes stored)
    unit: str
    per: str  # what one quota belongs to: sender, content or client-address

    def field_item(self) -> str:
        """This policy as one member of a RateLimit-Policy field."""
        item = f'"{self.name}";q={self.quota}'
        if self.unit in REGISTERED_UNITS:
            if self.unit != "requests":  # the draft's default unit
                item += f';qu="{self.unit}"'
        else:
            item += f';eph-unit="{self.unit}"'
        if self.window:
            item += f";w={self.window}"
        return item

    def published(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quota": self.quota,
            "window": self.window,
            "unit": self.unit,
            "per": self.per,
        }


@dataclass(frozen=True)
class Usage:
    """What is left of a policy for this caller, and the seconds until more is available."""

    policy: Policy
    remaining: int
    reset: int

    def field_item(self) -> str:
        return f'"{self.policy.name}";r={max(0, self.remaining)};t={max(0, self.reset)}'


@dataclass(frozen=True)
class Policies:
    uploads: Policy
    recipients: Policy
    inflight: Policy
    stored: Policy
    fanout: Policy
    redeem_misses: Policy
    viewer: Policy

    @classmethod
    def of(cls, r: RateLimitSettings) -> Policies:
        return cls(
            uploads=Policy("uploads", r.uploads_per_minute, 60, "requests", "sender"),
            recipients=Policy("recipients", r.recipients_per_day, 86_400, "recipients", "sender"),
            inflight=Policy("inflight", r.inflight_jobs, None, "jobs", "sender"),
            stored=Policy("stored", r.stored_bytes, None, "content-bytes", "sender"),
            fanout=Policy("fanout", r.fanout_recipients, r.fanout_window, "recipients", "content"),
            redeem_misses=Policy(
                "redeem-misses", r.redeem_misses_per_minute, 60, "requests", "client-address"
            ),
            viewer=Policy("viewer", r.viewer_per_minute, 60, "requests", "client-address"),
        )

    def all(self) -> list[Policy]:
        return [
            self.uploads,
            self.recipients,
            self.inflight,
            self.stored,
            self.fanout,
            self.redeem_misses,
            self.viewer,
        ]


def published(r: RateLimitSettings) -> dict[str, Any]:
    """The `rate_limits` member of GET /v1/config: every limit in force (0 = off, left out)."""
    return {
        "headers": DRAFT,
        "policies": [p.published() for p in Policies.of(r).all() if p.quota > 0],
    }


def policies(settings: Settings) -> dict[str, Any]:
    """What GET /v1/config publishes as `rate_limits`."""
    return published(settings.ratelimit)


def headers(usages: list[Usage]) -> dict[str, str]:
    return {
        "RateLimit-Policy": ", ".join(u.policy.field_item() for u in usages),
        "RateLimit": ", ".join(u.field_item() for u in usages),
    }


def seconds(value: float) -> int:
    """Whole seconds, never 0 for a wait that is still running: Retry-After: 0 invites a storm."""
    return max(1, math.ceil(value))


def rate_limited(usage: Usage, detail: str) -> ServiceError:
    wait = seconds(usage.reset)
    refused = Usage(usage.policy, 0, wait)
    return ServiceError(
        429,
        "rate-limited",
        detail,
        headers={"Retry-After": str(wait), **headers([refused])},
        extra={"violated-policies": [usage.policy.name]},
    )
