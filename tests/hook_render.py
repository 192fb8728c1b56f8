"""The hooks rendered the way cookiecutter renders them (Jinja, a context), then imported."""

from __future__ import annotations

import json
import types

from cookiecutter.environment import StrictEnvironment

from tests.bake import TEMPLATE

DEFAULTS = {
    **{k: v for k, v in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()},
    "project_slug": "my_chatkit_app",
    "python_version": "3.11",
    "_template": "/somewhere/template",
    "_output_dir": "/somewhere/out",
    # where the post hook finds its modules (hooks/post_gen/)
    "_repo_dir": str(TEMPLATE),
    "_checkout": None,
}
NASTY = 'Tom\'s "Chat" """ \'\'\' $(touch /tmp/pwned) `id`; \\n {{ x }} — 🚀 ünïcödé'


def load_hook(name: str, **answers: object) -> types.ModuleType:
    """Render hooks/<name>.py with Jinja and a cookiecutter context, then import it."""
    context = {**DEFAULTS, **answers}
    source = (TEMPLATE / "hooks" / f"{name}.py").read_text()
    env = StrictEnvironment(context={"cookiecutter": context})
    rendered = env.from_string(source).render(cookiecutter=context)
    module = types.ModuleType(name)
    module.__file__ = f"/rendered/{name}.py"
    exec(compile(rendered, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module
