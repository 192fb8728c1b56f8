"""The post-generation hook's modules (hooks/post_gen_project.py imports them from here).

Standard library only: they run on cookiecutter's own interpreter.
"""
