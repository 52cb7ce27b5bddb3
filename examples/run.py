"""Compile every example with the `kiln` command, then run the digest both ways.

    python examples/run.py [ROOT]

writes examples/build/{digest,fetcher,etl}.py with `kiln compile`, then runs
examples/digest.py, which digests the Markdown under ROOT (the repository by
default) with the compiled flow and with the source flow as plain Python,
prints the digest and both wall times, and checks that the two texts agree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _build import kiln_command

HERE = Path(__file__).resolve().parent
EXAMPLES = ("digest.py", "fetcher.py", "etl.py")


def main() -> int:
    sources = [str(HERE / name) for name in EXAMPLES]
    command = [kiln_command(), "compile", *sources, "-o", str(HERE / "build")]
    compiled = subprocess.run(command, check=False)
    if compiled.returncode != 0:
        return compiled.returncode  # kiln printed the diagnostics
    print()
    digest = [sys.executable, str(HERE / "digest.py"), *sys.argv[1:]]
    return subprocess.run(digest, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
