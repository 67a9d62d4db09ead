"""The `viteproxy` subcommands, one module each with `main(argv) -> int`.

`viteproxy.cli` dispatches to them and imports only the one asked for.
"""
