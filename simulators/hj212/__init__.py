"""Simulated HJ 212 stations (pollution-source data loggers) that push HJ 212-2017 packets over TCP.

- ``Hj212Station(mn, password, profile, host, port, ...)``: one data logger (a flue-gas CEMS or a wastewater
  outlet, by the profile's kind): real-time (2011), minute (2051) and hourly (2061) data, the A bit optionally set
  (answers awaited, retried, timed), faults on demand (``inject``: bad_crc, garbage, split_writes, byte_by_byte,
  bad_password, unknown_code). ``await station.run(stop_event)``.
- ``Hj212Fleet``: several stations run together; ``server_stations()`` and ``passwords()`` give what the ingest
  server's config needs; ``demo_fleet(host, port, profiles)`` is one CEMS and one outlet for a district.
- ``WastewaterOutlet``: the outlet's behaviour (the CEMS uses ``simulators.behaviours.FlueGasCems``).
"""

from simulators.hj212 import _wire
from simulators.hj212.station import FAULTS, Hj212Fleet, Hj212Station, demo_fleet, make_behaviour
from simulators.hj212.wastewater import WastewaterOutlet

frame = _wire.frame
crc = _wire.crc

__all__ = ["FAULTS", "Hj212Fleet", "Hj212Station", "WastewaterOutlet", "crc", "demo_fleet", "frame", "make_behaviour"]
