"""The store server's web app: associates' handhelds and the manager's dashboard.

Modules, one idea each: :mod:`auth` (one-use links and sessions), :mod:`session` (who is
asking), :mod:`sessions` (session endpoints), :mod:`headers` (security headers),
:mod:`prompts` (each associate's prompt stream), :mod:`sse` (events on the wire),
:mod:`hub` (MQTT and Redis), :mod:`floor` (the dashboard's view of the floor),
:mod:`metrics` (Prometheus), :mod:`routes` (the handheld's), :mod:`dashboard` and
:mod:`ops` (routes), :mod:`server` (app and server).
"""

from handheld.server import bind_port, create_app, run_api

__all__ = ["bind_port", "create_app", "run_api"]
