"""Workflows: one module per command, the library API behind the CLI.

Each resolves its inputs, checks its options before any file is read, embeds through one
``EmbedConfig``, runs the pure operation from ``agcurate.ops`` and, given an ``out`` folder, writes
the command's CSV and HTML outputs. Each returns a result object holding the same tables the CSVs
hold. ``agcurate.dedup(...)``, ``agcurate.frames(...)`` and the rest are these functions.
"""
