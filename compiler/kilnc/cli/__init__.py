"""The `kiln` command: its console script, arguments, one module per command, and
what the commands share (Ctrl-C, a closed stdout, the files they read and write,
[tool.kiln]).

Nothing is imported here: the console script (`entry.py`) must answer Ctrl-C
before anything that costs an import, and each command's module is imported
only when that command runs (`parser.py`).
"""
