"""The broker's contract (:mod:`broker_config.contract`) and its config file templates.

``mosquitto.conf.tmpl`` and ``redis.conf.tmpl`` are rendered by
:mod:`floorwalker.services` into a run directory; nothing here relies on a system-wide
broker or Redis.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
MOSQUITTO_TEMPLATE = CONFIG_DIR / "mosquitto.conf.tmpl"
#: With per-device logins, the ACL and an optional TLS listener (``services up --secrets``).
MOSQUITTO_SECURE_TEMPLATE = CONFIG_DIR / "mosquitto-secure.conf.tmpl"
#: Store broker -> central broker bridge (``floorwalker provision bridge``).
BRIDGE_TEMPLATE = CONFIG_DIR / "bridge.conf.tmpl"
REDIS_TEMPLATE = CONFIG_DIR / "redis.conf.tmpl"
