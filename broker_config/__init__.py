"""The broker's contract (:mod:`broker_config.contract`) and its config file templates.

``mosquitto.conf.tmpl`` and ``redis.conf.tmpl`` are rendered by
:mod:`floorwalker.services` into a run directory; nothing here relies on a system-wide
broker or Redis.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
MOSQUITTO_TEMPLATE = CONFIG_DIR / "mosquitto.conf.tmpl"
REDIS_TEMPLATE = CONFIG_DIR / "redis.conf.tmpl"
