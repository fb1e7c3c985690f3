"""The command line's plumbing: what a user types, sees and gets as files.

    ranvgg    the ``ranvgg`` command: one subcommand per task module, from a table
    command   one task's command line: shared options and their checks, the preflight, ``main``
              (exit codes, one-line errors)
    console   messages and progress (quiet in the Python API, talkative on the command line)
    signals   SIGTERM handled like Ctrl-C; saving is never cut short
    outputs   output paths (numbered defaults, collisions refused before work), saving, the log
    plots     the loss curve, the contact sheet of frames, the stacked build's scores
"""
