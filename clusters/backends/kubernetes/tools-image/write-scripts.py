"""Writes the debug toolbox's scripts into a tools folder: ``python3 write-scripts.py TOOLBOX_PY DEST``.

TOOLBOX_PY is ``clusters/backends/contract/toolbox.py``: the scripts are its ``SCRIPTS``, written by its own
``install_scripts``, so the tools image carries exactly what every backend installs. It needs nothing but the
standard library (the image's build stage has no Django).
"""

import importlib.util
import sys
from pathlib import Path


def main(toolbox_py: str, dest: str) -> None:
    spec = importlib.util.spec_from_file_location("easyai_toolbox", toolbox_py)
    if spec is None or spec.loader is None:
        raise SystemExit(f"write-scripts.py: cannot load {toolbox_py}")
    toolbox = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toolbox)
    toolbox.install_scripts(Path(dest))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python3 write-scripts.py TOOLBOX_PY DEST")
    main(sys.argv[1], sys.argv[2])
