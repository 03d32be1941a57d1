"""What end-to-end tests and bench/ share: the real gunicorn service, the widget's stream parser,
waiting for a condition. Plain modules, no fixtures (those live in tests/conftest.py)."""
