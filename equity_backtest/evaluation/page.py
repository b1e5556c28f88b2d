"""The shell every HTML report shares (tear sheet, overfitting analysis, factor report): one
stylesheet, self-contained pages (images embedded as data: URIs, no scripts, nothing fetched)."""

from __future__ import annotations

import base64
import html

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1080px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 2em 1em 0;display:inline-table;vertical-align:top}
td,th{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
table.small td,table.small th{padding:.15em .35em;font-size:.85em}
img{max-width:100%} .meta{color:#555} h2{margin-top:1.6em;border-bottom:2px solid #eee}
table.settings td{text-align:left}
"""


def image(name: str, png: bytes) -> str:
    """A PNG embedded in the page, with its name as the alt text."""
    return (
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
    )


def page(title: str, body: str) -> str:
    """A whole HTML document around `body` (already escaped where it holds data)."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style></head><body>\n"
        f"{body}\n</body></html>\n"
    )
