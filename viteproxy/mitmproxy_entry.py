"""The script mitmproxy loads from an installed viteproxy.

`mitmdump -s "$(viteproxy addon-path)"` (or mitmweb) loads this file; from a
checkout, `addons/viteproxy.py` does the same. mitmproxy puts the script's
folder first on `sys.path` while loading it, which here is the package folder
itself, whose module names (`config`, `report`, ...) would shadow others:
that entry is taken out, and the folder holding the package put in its place.
"""

import sys
from pathlib import Path

_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
# The package this file lives in, whether installed or in a checkout.
if str(_here.parent) not in sys.path:
    sys.path.insert(0, str(_here.parent))

from viteproxy.addons import make_addons  # noqa: E402

addons = make_addons()
