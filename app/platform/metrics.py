"""Prometheus metrics. One registry per app so tests can build several apps in one process."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.messages = Counter(
            "kpr_messages_total",
            "Received ebXML requests by outcome and receiver environment",
            ["outcome", "environment"],
            registry=self.registry,
        )
        self.intake_seconds = Histogram(
            "kpr_intake_seconds",
            "Time from request to stored reply",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.http_requests = Counter(
            "kpr_http_requests_total",
            "HTTP requests by route template and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "kpr_http_request_seconds",
            "HTTP request latency by route template",
            ["route"],
            registry=self.registry,
        )
        self.register_unconfirmed_oldest = Gauge(
            "kpr_register_unconfirmed_oldest_seconds",
            "Age of the oldest message the register's loader has not confirmed (0: up to date)",
            ["environment"],
            registry=self.registry,
        )
        self.registry_calls = Counter(
            "kpr_registry_calls_total",
            "Calls to NHN's registries by registry, operation and outcome",
            ["registry", "operation", "outcome"],
            registry=self.registry,
        )
        self.registry_seconds = Histogram(
            "kpr_registry_call_seconds",
            "Duration of calls to NHN's registries",
            ["registry"],
            registry=self.registry,
        )
        self.registry_lookups = Counter(
            "kpr_registry_lookups_total",
            "Sender look-ups by the intake: cached, fetched, unknown, unavailable, limited",
            ["result"],
            registry=self.registry,
        )
        self._replies()
        self.outbox_depth = Gauge(
            "kpr_notification_outbox_depth",
            "Notification emails waiting to be sent",
            registry=self.registry,
        )

    def _replies(self) -> None:
        """The reply outbox (issue 26): what waits, and how the tries went."""
        self.replies_waiting = Gauge(
            "kpr_reply_outbox_waiting",
            "Asynchronous replies not yet delivered: pending (retries left) or slow",
            ["status"],
            registry=self.registry,
        )
        self.reply_deliveries = Counter(
            "kpr_reply_deliveries_total",
            "Tries to deliver an asynchronous reply, by outcome (delivered, failed)",
            ["outcome"],
            registry=self.registry,
        )

    def registry_call(self, registry: str, operation: str, outcome: str, seconds: float) -> None:
        self.registry_calls.labels(registry, operation, outcome).inc()
        self.registry_seconds.labels(registry).observe(seconds)
