"""An emulator of the Longhorn manager's REST API (/v1), for the sandbox.

Faithful to Longhorn 1.7 (or 1.8 with --version 1.8) as described in
reference/longhorn-api.md; volumes are local directories, backups are copies
of them. Run it with `python -m sandbox.longhorn --help`; what it does and how
it differs from Longhorn is in docs/sandbox-longhorn.md.
"""
