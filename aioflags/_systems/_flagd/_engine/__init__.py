"""flagd's engine: its flags compiled, their targeting (JsonLogic) written as Python (flagd.md).

It sits just above the evaluation (docs/architecture.md, "Layers"): the
model never imports it; flagd's system (``_system.py``) holds its
``compile_flagd_flag`` as its ``compile``, and the store reaches its
prebuild through the system (``FlagSystem.prebuild``).
"""
