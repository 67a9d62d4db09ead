"""`python -m viteproxy`: the same as the `viteproxy` command."""

from .cli import main

raise SystemExit(main())
