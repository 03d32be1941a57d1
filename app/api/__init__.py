"""HTTP blueprints: each parses the request, calls a service and shapes the response."""
