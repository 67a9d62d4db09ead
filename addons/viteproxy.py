"""viteproxy entry: `mitmdump -s addons/viteproxy.py` (run where rules.yaml is).

Thin on purpose: mitmproxy re-imports only this file on change, so the
implementation lives in the `viteproxy_core` package. A checkout's own package
wins over an installed one, so editing the repository is what runs.
"""

import sys
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
if (_root / "viteproxy_core").is_dir() and str(_root) not in sys.path:
    sys.path.insert(0, str(_root))

from viteproxy_core.addons import make_addons  # noqa: E402

addons = make_addons()
