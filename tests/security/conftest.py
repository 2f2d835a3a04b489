"""Fixtures the security tests share with the integration tests: the thin slice (a real
recommender on the session's Mosquitto and Redis)."""

from tests.integration.test_recommender import running  # noqa: F401  (a fixture)
