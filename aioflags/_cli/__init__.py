"""The ``aioflags`` command's subcommands: one module each, dispatched by ``aioflags.__main__``.

Each command module ends with a ``COMMAND``, a :class:`_command.Command`:
its name, its help, the arguments it adds to its own parser and the
function that runs it (libcst's ``CodemodCommand.add_args`` is the
pattern). A module imports what its command runs on only when it runs,
so that ``aioflags --help`` and ``--version`` load none of it. ``_command``
holds what they share.
"""
