"""Prometheus metrics of one API instance: request counts and latencies, and state counts read at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tasker_http_requests", "HTTP requests served", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tasker_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            registry=self.registry,
        )  # fmt: skip
        self.tasks = Gauge("tasker_tasks", "tasks by current state", ["state"], registry=self.registry)
        self.steps = Gauge("tasker_steps", "workflow steps by current state", ["state"], registry=self.registry)
        self.queue_depth = Gauge("tasker_queue_depth", "messages waiting per queue", ["queue"], registry=self.registry)

    def render(self, tasks: dict[str, int], steps: dict[str, int], queues: dict[str, int]) -> bytes:
        for gauge, values in ((self.tasks, tasks), (self.steps, steps)):
            gauge.clear()
            for state, count in values.items():
                gauge.labels(state=state).set(count)
        self.queue_depth.clear()
        for queue, depth in queues.items():
            self.queue_depth.labels(queue=queue).set(depth)
        return generate_latest(self.registry)
