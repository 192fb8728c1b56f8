"""`python bench/driver [options]`: the benchmark's command line (driver/config.py)."""

import sys
from pathlib import Path

# Run as a folder, Python puts bench/driver/ first on the path: bench/ instead, so the
# package imports as `driver` and its modules shadow nothing.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from driver.main import main  # noqa: E402

sys.exit(main())
