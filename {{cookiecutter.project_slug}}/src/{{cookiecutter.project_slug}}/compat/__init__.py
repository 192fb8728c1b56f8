"""Every use of a dependency's private API, one module per dependency, each for a measured gain
or a bug the public API cannot avoid, each guarded by tests/compat/test_compat.py
(docs/design_decisions.md, "Private APIs in compat/")."""
