import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

PENGUINS = Path(__file__).resolve().parents[3] / "pipelines" / "data" / "penguins.csv"


@pytest.fixture
def penguins_csv() -> Path:
    return PENGUINS
