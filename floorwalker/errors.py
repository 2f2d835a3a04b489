"""The small exception tree.

Every error carries one line a person can act on (its ``str``). Transient errors are worth
retrying with back-off (a broker or Redis that is down); permanent ones are not (a broken
config file, a payload that breaks the contract) and end in a clear message or a
dead-letter record.
"""

from __future__ import annotations


class FloorwalkerError(Exception):
    """Base of every error Floorwalker raises on purpose."""


class PermanentError(FloorwalkerError):
    """Retrying will not help: the input or the configuration must change."""


class TransientError(FloorwalkerError):
    """The operation may succeed later (a service restarting, a network blip)."""


class ConfigError(PermanentError):
    """A configuration file or option is missing or invalid."""


class ServiceUnavailable(TransientError):
    """Mosquitto or Redis cannot be reached."""


class ServiceStartError(PermanentError):
    """Our own Mosquitto or Redis could not be started (binary missing, port busy)."""
