"""Prometheus metrics of the service, on a private registry (several apps in one process never collide)."""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ENDPOINTS = ("/health", "/ready", "/metrics", "/v1/model", "/v1/detect", "/docs", "/openapi.json")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
PREFIX = "yolor_serve"


def endpoint_label(path: str) -> str:
    """The route for a known path, "other" for anything else (a scanner's random paths add no label values)."""
    return path if path in ENDPOINTS else "other"


class ServeMetrics:
    """requests by endpoint and status, errors by kind, request latency, model-call batch sizes, images,
    queue depth and requests in flight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(f"{PREFIX}_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.errors = Counter(f"{PREFIX}_errors", "requests refused or failed, by kind", ["kind"], registry=r)
        self.latency = Histogram(f"{PREFIX}_request_seconds", "time from request to response", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram(f"{PREFIX}_batch_size", "images per model call", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.images = Counter(f"{PREFIX}_images", "images detected", registry=r)
        self.queue_depth = Gauge(f"{PREFIX}_queue_depth", "images waiting for a batch (the unit of --max-queue)",
                                 registry=r)
        self.in_flight = Gauge(f"{PREFIX}_in_flight", "detect requests being handled", registry=r)
        self.pixels_in_flight = Gauge(f"{PREFIX}_pixels_in_flight", "decoded pixels admitted and not yet answered "
                                      "(the unit of --max-pixels-in-flight)", registry=r)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth from `depth` at every scrape."""
        self.queue_depth.set_function(lambda: float(depth()))

    def watch_pixels(self, in_use: Callable[[], int]) -> None:
        """Read the decoded pixels in flight from `in_use` at every scrape."""
        self.pixels_in_flight.set_function(lambda: float(in_use()))

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = endpoint_label(path)
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def count_error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of a scrape."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
