"""RSSI smoothing and distance, pure code with time passed in.

Raw RSSI of one phone at one gateway jumps by ±6 dB between advertisements (multipath,
the body turning). :class:`RssiFilter` is a scalar Kalman filter on a random walk: the
process noise grows with the time since the last advertisement (a walking shopper's
signal drifts by a few dB per second), the measurement noise is the per-advert scatter.
A reading further than ``gate_sigma`` standard deviations from the prediction is an
outlier and ignored, unless several come in a row (then the phone really moved: the
filter restarts from them rather than stay stuck).

:func:`distance_m` inverts the log-distance path-loss model of the gateway's calibration,
``rssi = measured_power - 10 · n · log10(d)``.
"""

from __future__ import annotations

from typing import Final

#: What a BLE receiver can physically report; anything else is a broken reading.
RSSI_MIN_DBM: Final = -127.0
RSSI_MAX_DBM: Final = 20.0


def rssi_in_range(rssi: float) -> bool:
    return RSSI_MIN_DBM <= rssi <= RSSI_MAX_DBM and rssi == rssi  # (NaN fails the last test)


def distance_m(rssi: float, measured_power_dbm: float, path_loss_exponent: float) -> float:
    """Distance (m) at which the calibrated gateway expects ``rssi``; capped to 0.1..1000 m."""
    d: float = 10.0 ** ((measured_power_dbm - rssi) / (10.0 * path_loss_exponent))
    return min(max(d, 0.1), 1000.0)


class RssiFilter:
    """Kalman filter of one (gateway, id) RSSI, with outlier rejection."""

    __slots__ = (
        "_consecutive_outliers",
        "_meas_var",
        "_proc_var",
        "_restart_after",
        "_t",
        "_var",
        "gate_sigma",
        "rssi",
    )

    def __init__(
        self,
        rssi: float,
        ts: float,
        *,
        process_db_per_s: float = 6.0,
        measurement_sd_db: float = 8.0,
        gate_sigma: float = 3.0,
        restart_after: int = 3,
    ) -> None:
        self.rssi = rssi
        self._t = ts
        self._proc_var = process_db_per_s**2
        self._meas_var = measurement_sd_db**2
        self._var = self._meas_var
        self.gate_sigma = gate_sigma
        self._consecutive_outliers = 0
        self._restart_after = restart_after

    def update(self, rssi: float, ts: float) -> float:
        """Fold in one reading; return the smoothed RSSI."""
        dt = ts - self._t
        if dt > 0:
            self._t = ts
            self._var += self._proc_var * dt
        innovation = rssi - self.rssi
        total = self._var + self._meas_var
        if innovation * innovation > self.gate_sigma * self.gate_sigma * total:
            self._consecutive_outliers += 1
            if self._consecutive_outliers < self._restart_after:
                return self.rssi
            # Not noise: the signal really changed. Restart close to the new level.
            self._var = self._meas_var
        self._consecutive_outliers = 0
        gain = self._var / total
        self.rssi += gain * innovation
        self._var *= 1.0 - gain
        return self.rssi

    @property
    def sd_db(self) -> float:
        """The filter's standard deviation of its estimate, dB."""
        return float(self._var**0.5)
