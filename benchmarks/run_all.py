"""``make bench``: run every benchmark of kfpc; each writes JSON and a PNG plot into benchmarks/results/.

Usage: python benchmarks/run_all.py [--quick] [NAME ...]   (NAME: validation, parity_tfdv, training, datasets, ...)

Benchmarks measure; they never assert timings. A benchmark that fails is reported and the others still run;
the exit code is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: run order: cheap first, the long data-size sweeps last
BENCHMARKS = ["images", "serving", "fuzz", "push", "evaluation", "training", "tuning", "validation", "parity_tfdv",
              "shards", "quality", "datasets"]


def _script(name: str) -> Path:
    return HERE / (f"{name}.py" if name == "parity_tfdv" else f"bench_{name}.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in a few minutes")
    parser.add_argument("names", nargs="*", help=f"subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    names = args.names or [n for n in BENCHMARKS if _script(n).exists()]
    failed = []
    for name in names:
        script = _script(name)
        if not script.exists():
            print(f"== {name}: no such benchmark ({script.name})", flush=True)
            failed.append(name)
            continue
        print(f"== {name}: {script.name}{' --quick' if args.quick else ''}", flush=True)
        start = time.time()
        code = subprocess.call([sys.executable, str(script)] + (["--quick"] if args.quick else []), cwd=HERE.parent)
        print(f"== {name}: exit {code} after {time.time() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    print(f"results in {HERE / 'results'}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
