"""docker's verbs over the engine and the dockyard packages, one module per noun.

Each module declares its verbs' flags next to their handlers in a ``VERBS`` table
(commands.parsing.Verbs); cli.py imports only the module of the verb being run.
"""
