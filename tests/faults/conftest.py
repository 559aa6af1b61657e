"""Fixtures of the fault suite: ``make_district`` builds a :class:`~tests.faults.harness.FaultDistrict` in the test's
folder (options as keywords) and closes it at the end, whatever happened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import FaultDistrict

MakeDistrict = Callable[..., FaultDistrict]


@pytest.fixture
def make_district(tmp_path: Path) -> Iterator[MakeDistrict]:
    made: list[FaultDistrict] = []

    def make(**options: object) -> FaultDistrict:
        district = FaultDistrict(tmp_path, **options)  # type: ignore[arg-type]
        made.append(district)
        return district

    yield make
    for district in made:
        district.close()
