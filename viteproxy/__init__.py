"""viteproxy: a dev proxy on mitmproxy that routes like Vite and explains failures.

The pure modules (config, target, routing, diagnosis, ...) import no mitmproxy;
the addon modules are thin glue over them.
"""

__version__ = "0.2.0"
