"""The HJ 212 code tables as data: system codes (ST) and command codes (CN) of both editions, and what this server
does with each command. Pure.

HJ 212-2017 Appendix B (system codes) and §6.6 (command codes), with the HJ 212-2025 additions as reported by
third-party implementations (shared standards/hj212.md, "HJ 212-2025: known differences"; the text itself was not
at hand: every 2025 line is marked reported). A code missing here is not an error in the code: the tables are data,
extended by adding a line.
"""

from __future__ import annotations

from enum import StrEnum

# ST: system codes. 2017: Appendix B (codes 24-52 as a public implementation lists them, check); 2025: 44, 45.
SYSTEMS: dict[str, str] = {
    "21": "surface-water quality monitoring",
    "22": "ambient air quality monitoring",
    "23": "acoustic environment (noise) monitoring",
    "24": "groundwater quality monitoring",
    "25": "soil quality monitoring",
    "26": "seawater quality monitoring",
    "27": "volatile organic compounds monitoring",
    "31": "air pollution source (flue gas)",
    "32": "surface-water pollution source (wastewater)",
    "33": "groundwater pollution source",
    "34": "marine pollution source",
    "35": "soil pollution source",
    "36": "noise pollution source",
    "37": "vibration pollution source",
    "38": "radioactive pollution source",
    "39": "construction-site dust",
    "41": "electromagnetic pollution source",
    "44": "electricity use of production and treatment equipment (HJ 212-2025, reported)",
    "45": "key production working conditions (HJ 212-2025, reported)",
    "51": "flue-gas emission process monitoring",
    "52": "wastewater emission process monitoring",
    "91": "system interaction",
}
SYSTEM_INTERACTION = "91"

# Monitoring systems that watch an enterprise's process rather than one pollutant stream: the data logger of a
# source sends them under its own MN beside its pollutant data (assumption: HJ 212-2025 adds 44 and 45 for exactly
# this; a station accepts them besides its own ST, and its profile maps what they carry).
PROCESS_SYSTEMS = frozenset({"44", "45", "51", "52"})


class Handling(StrEnum):
    """What the server does with a command from an authenticated station."""

    INGEST = "ingest"  # data: mapped to points and published
    HEARTBEAT = "heartbeat"  # liveness, answered with 9013
    REGISTER = "register"  # hardware serial (registration): logged, answered
    NOT_INGESTED = "not_ingested"  # known, not used here: kept as a dead letter, answered so it is not resent


COMMANDS: dict[str, tuple[str, Handling]] = {
    "1001": ("upload hardware serial, registration (HJ 212-2025, reported)", Handling.REGISTER),
    "1011": ("field-machine time (answer)", Handling.NOT_INGESTED),
    "1013": ("time-calibration request", Handling.NOT_INGESTED),
    "1014": ("key exchange (HJ 212-2025, reported)", Handling.NOT_INGESTED),
    "1061": ("real-time data interval (answer)", Handling.NOT_INGESTED),
    "1063": ("minute data interval (answer)", Handling.NOT_INGESTED),
    "2011": ("real-time data", Handling.INGEST),
    "2013": ("raw VOC data with spectra; multimedia file information (HJ 212-2025, reported)", Handling.NOT_INGESTED),
    "2021": ("equipment running state", Handling.NOT_INGESTED),
    "2031": ("daily data", Handling.INGEST),
    "2041": ("equipment running time, daily", Handling.NOT_INGESTED),
    "2051": ("minute data", Handling.INGEST),
    "2061": ("hourly data", Handling.INGEST),
    "2081": ("data-logger power-on time", Handling.NOT_INGESTED),
    "3020": ("field-machine information", Handling.NOT_INGESTED),
    "9011": ("request answer", Handling.NOT_INGESTED),
    "9012": ("execution result", Handling.NOT_INGESTED),
    "9013": ("notification answer", Handling.NOT_INGESTED),
    "9014": ("data answer", Handling.NOT_INGESTED),
    "9015": ("heartbeat (HJ 212-2025, reported)", Handling.HEARTBEAT),
}
HEARTBEAT = "9015"
REGISTER = "1001"


def handling(cn: str) -> Handling:
    """What to do with ``cn``; an unknown command is kept and answered like a known one that is not ingested."""
    entry = COMMANDS.get(cn)
    return Handling.NOT_INGESTED if entry is None else entry[1]


def is_interaction(cn: str) -> bool:
    """Commands a station may send with ST 91 (system interaction) whatever its own system: answers (9xxx), the
    heartbeat and registration (1001)."""
    return cn.startswith("9") or cn == REGISTER


def encrypted_command(cn: str) -> bool:
    """Whether HJ 212-2025 encrypts the CP of ``cn`` with SM4 (reported): data commands CN 2000-2999, key exchange
    (1014) and field-machine information (3020)."""
    return cn.startswith("2") or cn in ("1014", "3020")
