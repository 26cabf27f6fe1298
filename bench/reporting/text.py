"""Text from files handed to us, made safe for the board: links only to admitted addresses, and
text that forms no Markdown of its own. Both renderers (Markdown and HTML) rely on these."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_URL = 2000

RELATIVE_URL = re.compile(r"(?![a-z][a-z0-9+.-]*:)[A-Za-z0-9_.][A-Za-z0-9_./-]*(#[A-Za-z0-9_-]+)?|#[A-Za-z0-9_-]+")


def safe_href(url: str) -> str | None:
    """The address a link may have: an absolute http(s) URL, or a relative one inside the board's own
    folder tree (letters, digits, `_ . / -` and a `#fragment`). Anything else — `javascript:`,
    `data:`, a scheme-relative `//host`, whitespace, quotes, brackets that would end a Markdown
    link — is refused."""
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 or c in "\"'<>\\`()[]|" for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return url if parts.hostname else None
    return url if RELATIVE_URL.fullmatch(url) else None


def markdown_text(text: str) -> str:
    """Text from a file, shown as itself in Markdown: no link, emphasis, code or HTML it could form."""
    return re.sub(r"([\\`*_\[\]()<>|#!])", r"\\\1", " ".join(text.split()))
