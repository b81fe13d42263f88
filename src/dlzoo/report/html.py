"""The report's Markdown as a standalone HTML page (the main report and the claims page)."""

from __future__ import annotations

TITLE = "dlzoo report"


def to_html(markdown_text: str, title: str = TITLE) -> str:
    """The report's Markdown as a standalone HTML page (tables and images; markdown-it-py, which rich already
    brings, renders it)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}code{background:#f3f3f3}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{style}</style></head>\n<body>\n{body}</body></html>\n")
