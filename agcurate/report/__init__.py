"""HTML outputs: Jinja2 templates with autoescaping, thumbnails, and pages that open offline."""

from .html import count, file_href, format_time, human_bytes, render_page, thumbnails, write_csv

__all__ = ["count", "file_href", "format_time", "human_bytes", "render_page", "thumbnails", "write_csv"]
