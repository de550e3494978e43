"""Flag lifecycle tools: ``aioflags codegen``'s typed accessors (the cleanup codemod is to come).

They read flag files with the data system's loader, as ``aioflags validate``
does, and write Python source; nothing here runs inside a client.
"""
