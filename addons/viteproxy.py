"""viteproxy entry for mitmproxy: `mitmdump -s addons/viteproxy.py` (or mitmweb).

Thin on purpose: mitmproxy re-imports only this file on change, so the
implementation lives in the `viteproxy` package. From a checkout the
checkout's package wins over an installed one, so editing the repository is
what runs. The installed package ships the same entry (`viteproxy addon-path`).
"""

import sys
from pathlib import Path

# mitmproxy puts this file's folder first on sys.path while it loads the
# script; this file is named like the package, so that folder must not be
# searched for `viteproxy` (it would find this file again).
_here = Path(__file__).resolve().parent
_root = _here.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
if (_root / "viteproxy" / "__init__.py").is_file():
    sys.path.insert(0, str(_root))

from viteproxy.addons import make_addons  # noqa: E402

addons = make_addons()
