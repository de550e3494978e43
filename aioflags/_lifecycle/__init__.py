"""Flag lifecycle tools: ``aioflags codegen``'s typed accessors, ``aioflags cleanup``'s codemod.

They read flag files with the data system's loader, as ``aioflags validate``
does, and write Python source (``_cleanup`` rewrites it with libcst, imported
only when the command runs); nothing here runs inside a client.
"""
