"""Floorwalker: in-store sensing and next-best-action engine.

This package holds what every component shares apart from the wire contract (which lives
in :mod:`broker_config.contract`): the error tree, typed configuration, the MQTT client
lifecycle, the services runner and the command line.
"""

__version__ = "0.1.0"
