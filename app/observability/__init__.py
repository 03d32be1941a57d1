"""Watching the service: request ids and the request log, the chat log line, Prometheus metrics.

The services never import this package: they call an `Observer` (app/services/observer.py), and
`create_app` hands them a group of two — metrics from `metrics.MetricsObserver`, the chat log line
from `request_log.ChatLogObserver`.
"""
