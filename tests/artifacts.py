"""Where tests keep their artefacts (page screenshots): ``$PULSEGATE_ARTIFACTS/<name>``, else the test's tmp
folder. `make test` (CI) sets PULSEGATE_ARTIFACTS to tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import os
from pathlib import Path


def artifacts_dir(name: str, tmp_path: Path) -> Path:
    d = Path(os.environ.get("PULSEGATE_ARTIFACTS") or tmp_path) / name
    d.mkdir(parents=True, exist_ok=True)
    return d
