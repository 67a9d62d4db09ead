"""The script mitmproxy loads from an installed viteproxy.

`mitmdump -s "$(viteproxy addon-path)"` (or mitmweb) loads this file; from a
checkout, `addons/viteproxy.py` does the same. mitmproxy puts the script's
folder first on `sys.path` while loading it, which here is the package folder
itself, whose module names (`config`, `report`, ...) would shadow others:
that entry is taken out before anything is imported.
"""

import sys
from pathlib import Path

_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

from viteproxy.addons import make_addons  # noqa: E402

addons = make_addons()
