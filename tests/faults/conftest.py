"""Fixtures of the fault suite: ``make_district`` builds a :class:`~tests.faults.harness.FaultDistrict` in the test's
folder (options as keywords) and closes it at the end, whatever happened."""

from __future__ import annotations

import os
import subprocess
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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of this test's own (root: the fault suite runs as root in CI), unmounted after."""
    assert os.geteuid() == 0, "the disk-full fault mounts a small tmpfs: run the fault suite as root"
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)  # still busy: detach now, freed once closed


def fill(disk: Path) -> Path:
    """Write a file on ``disk`` until its file system has no byte left (ENOSPC); the file, to delete later. Called
    again, it takes what was freed since (the outbox's SQLite gives space back when it checkpoints its journal)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        if exc.errno != 28:  # ENOSPC
            raise
    finally:
        os.close(fd)
    return filler
