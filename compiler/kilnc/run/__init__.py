"""What `kiln run` and `kiln runs` do beneath their commands (cli/run.py, cli/resume.py).

Loading the target (a source compiled first, or a module kiln generated), its
`name=value` arguments, the durable run's ledger and journal, watching the
calls as they run, and what is printed and traced of them. Nothing here
imports the compiler's libraries but `compile.py`, and only for a source.
"""
