"""mitmweb: show the Comment column, where viteproxy writes each flow's rule and outcome.

mitmweb's flow list has a Comment column that is off by default
(`web_columns`). viteproxy's first comment line is the rule and the outcome
(`[/api] CONNECT_REFUSED`), so it is switched on unless the user chose the
columns. Nothing happens outside mitmweb (the option does not exist there).
"""

from __future__ import annotations

from mitmproxy import ctx

__all__ = ["CommentColumn"]


class CommentColumn:
    def running(self) -> None:
        opts = ctx.options
        if "web_columns" not in opts.keys():
            return
        columns = list(opts.web_columns)
        if "comment" in columns or columns != list(opts.default("web_columns")):
            return  # already there, or the user's own choice
        opts.update(web_columns=[*columns, "comment"])
