"""The benchmark itself: runs inside a baked project's virtualenv (bench/e2e.py starts it as
`python bench/driver ...`).

It starts PostgreSQL, the fake model, two instances of the generated app and the guide-style
baseline, all on loopback, drives them with concurrent ChatKit clients over HTTP, and prints
a table (and JSON with --json). See bench/README.md for what each figure means. The generated
project's modules it uses are all named in `generated.py`.
"""
