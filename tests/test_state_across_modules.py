"""Class state and overrides that live in other modules than the flow's.

A multi-agent app (trial Q8) split its classes the usual way, a base in
`agents/base.py` and its subclasses in modules of their own, and kiln read
two things per module only, so a later node that read state ran at once and
saw the old value, silently:

- a class and its bases are one piece of state: `type(self).turns += 1` in a
  base's method, a classmethod's `cls.turns += 1`, `self.__class__.log = ...`,
  read as `Coder.turns` (or `CODER.turns`, `self.turns`) of a subclass
  another module defines; now the pieces of a hierarchy are one across the
  project's modules (effects/class_pieces.py);
- an override of a method called through a base-typed receiver, in a module
  the flow's module never imports itself: one a package's `__init__.py`
  imports, or one `importlib.import_module(f"app.agents.{kind}")` loads.
  kiln now reads the modules the program may run (effects/program.py): the
  imports, theirs, every package's `__init__.py` on the way, and every module
  under the package a computed import name starts with. Where no package is
  written (`import_module(name)`), a call that an override there could be
  keeps its place among the nodes that use module state, with a KLN405.

Each case is a package `app` whose `app/m.py` has the flow `main`; its
source and its compiled flow run in fresh interpreters and must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file

RUN = """
import asyncio, importlib, inspect, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/build"]
result = importlib.import_module(sys.argv[2]).main()
print(json.dumps(asyncio.run(result) if inspect.iscoroutine(result) else result))
"""

# The flow's module: `work` changes state late, `idle` lets a reader that
# does not wait for it run first, and `read` reads the state.
FLOW = """
import asyncio

from kiln import flow, node

{imports}


@node
async def work() -> int:
    await asyncio.sleep(0.05)
    return {work}


@node
async def idle() -> None:
    await asyncio.sleep(0.01)


@node
def read() -> int:
    return {read}


@flow
async def main() -> list[int]:
    a = await work()
    await idle()
    b = read()
    return [a, b]
"""

COUNTING_BASE = """
class BaseAgent:
    turns = 0

    def take_turn(self) -> int:
        type(self).turns += 1
        return type(self).turns
"""

CODER = """
from app.base import BaseAgent


class Coder(BaseAgent):
    pass


CODER = Coder()
"""


def _flow(imports: str, work: str, read: str) -> str:
    return FLOW.format(imports=imports, work=work, read=read)


CLASS_STATE: dict[str, dict[str, str]] = {
    "type_self_read_through_the_subclass": {
        "app/base.py": COUNTING_BASE,
        "app/workers.py": CODER,
        "app/m.py": _flow(
            "from app.workers import CODER, Coder", "CODER.take_turn()", "Coder.turns"
        ),
    },
    "a_class_level_log_through_self_class": {
        "app/base.py": """
class BaseAgent:
    log: list[str] = []

    def take_turn(self) -> int:
        self.__class__.log = self.__class__.log + ["t"]
        return len(self.log)
""",
        "app/workers.py": CODER,
        "app/m.py": _flow(
            "from app.workers import CODER, Coder",
            "CODER.take_turn()",
            "len(Coder.log)",
        ),
    },
    "a_classmethod_of_the_base": {
        "app/base.py": """
class BaseAgent:
    turns = 0

    @classmethod
    def take_turn(cls) -> int:
        cls.turns += 1
        return cls.turns
""",
        "app/workers.py": CODER,
        "app/m.py": _flow(
            "from app.workers import CODER, Coder", "CODER.take_turn()", "Coder.turns"
        ),
    },
    "read_through_the_instance": {
        "app/base.py": COUNTING_BASE,
        "app/workers.py": CODER,
        "app/m.py": _flow(
            "from app.workers import CODER", "CODER.take_turn()", "CODER.turns"
        ),
    },
    "read_through_self_in_the_subclass": {
        "app/base.py": COUNTING_BASE,
        "app/workers.py": """
from app.base import BaseAgent


class Coder(BaseAgent):
    def seen(self) -> int:
        return self.turns


CODER = Coder()
""",
        "app/m.py": _flow(
            "from app.workers import CODER", "CODER.take_turn()", "CODER.seen()"
        ),
    },
    "an_override_calls_super": {
        "app/base.py": COUNTING_BASE,
        "app/workers.py": """
from app.base import BaseAgent


class Coder(BaseAgent):
    def take_turn(self) -> int:
        return super().take_turn() * 10


CODER = Coder()
""",
        "app/m.py": _flow(
            "from app.workers import CODER, Coder", "CODER.take_turn()", "Coder.turns"
        ),
    },
    "written_through_the_base_read_through_a_grandchild": {
        "app/base.py": """
class BaseAgent:
    mode = "draft"
""",
        "app/mid.py": """
from app.base import BaseAgent


class Worker(BaseAgent):
    pass
""",
        "app/workers.py": """
from app import mid


class Coder(mid.Worker):
    pass
""",
        "app/m.py": _flow(
            "from app.base import BaseAgent\nfrom app.workers import Coder",
            'setattr(BaseAgent, "mode", "done") or 1',
            "len(Coder.mode)",
        ),
    },
    "a_mixin_of_another_module": {
        "app/mixins.py": """
class Counted:
    calls = 0

    def count(self) -> int:
        type(self).calls += 1
        return self.calls
""",
        "app/base.py": """
class BaseAgent:
    name = "base"
""",
        "app/workers.py": """
from app.base import BaseAgent
from app.mixins import Counted


class Coder(BaseAgent, Counted):
    pass


CODER = Coder()
""",
        "app/m.py": _flow(
            "from app.workers import CODER, Coder", "CODER.count()", "Coder.calls"
        ),
    },
}

AGENT_BASE = """
from __future__ import annotations

import importlib

STATUS: dict[str, str] = {"last": "none"}


class BaseAgent:
    def act(self, q: str) -> str:
        return q


def load_agent(kind: str) -> BaseAgent:
    mod = importlib.import_module(%s)
    agent: BaseAgent = mod.Agent()
    return agent
"""

LOUD = """
from app.agents.base import STATUS, BaseAgent


class Agent(BaseAgent):
    def act(self, q: str) -> str:
        STATUS["last"] = q
        return q.upper()
"""

ACTING_FLOW = """
import asyncio

from kiln import flow, node

from app.agents.base import STATUS, BaseAgent, load_agent


@node
async def act(agent: BaseAgent, q: str) -> str:
    await asyncio.sleep(0.05)
    return agent.act(q)


@node
async def idle() -> None:
    await asyncio.sleep(0.01)


@node
def last() -> str:
    return STATUS["last"]


@flow
async def main() -> list[str]:
    agent = load_agent(%s)
    a = await act(agent, "hi")
    await idle()
    b = last()
    return [a, b]
"""


def _agents(loader: str, kind: str = '"loud"', init: str = "") -> dict[str, str]:
    return {
        "app/agents/__init__.py": init,
        "app/agents/base.py": AGENT_BASE % loader,
        "app/agents/loud.py": LOUD,
        "app/m.py": ACTING_FLOW % kind,
    }


OVERRIDES: dict[str, dict[str, str]] = {
    "imported_by_the_package_init": _agents(
        'f"app.agents.{kind}"',  # read: the package's `__init__` imports it
        init="from app.agents import loud  # noqa: F401\n",
    ),
    "loaded_by_an_f_string": _agents('f"app.agents.{kind}"'),
    "loaded_by_a_concatenation": _agents('"app.agents." + kind'),
    "loaded_relative_to_the_package": _agents('"." + kind, __package__'),
    "loaded_under_the_module_s_own_package": _agents('f"{__package__}.{kind}"'),
    "imported_by_a_function_the_package_runs": {
        **_agents(
            "kind",
            init="def _load() -> None:\n    from app.agents import loud  # noqa: F401\n"
            "\n\n_load()\n",
        ),
        "app/agents/base.py": (AGENT_BASE % "__name__").replace(
            "agent: BaseAgent = mod.Agent()",
            "agent: BaseAgent = BaseAgent.__subclasses__()[-1]()",
        ),
    },
    "imported_by_a_parent_package_s_init": {
        **_agents('f"app.agents.{kind}"'),
        "app/__init__.py": "import app.agents.loud  # noqa: F401\n",
    },
    "a_name_kiln_cannot_tell": _agents("kind", kind='"app.agents.loud"'),
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in {"app/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def compile_and_run(
    root: Path, files: dict[str, str]
) -> tuple[object, object, list[str]]:
    """The flow's source and compiled results, and the codes kiln warned with."""
    _write(root, files)
    compilation = compile_file(root / "app" / "m.py")
    assert compilation.output is not None, compilation.diagnostics
    (root / "build").mkdir()
    (root / "build" / "m.py").write_text(compilation.output, encoding="utf-8")
    results = []
    for module in ("app.m", "m"):
        ran = subprocess.run(
            [sys.executable, "-c", RUN, str(root), module],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        results.append(json.loads(ran.stdout))
    codes = [d.code.value for d in compilation.diagnostics]
    return results[0], results[1], codes


@pytest.mark.parametrize("case", sorted(CLASS_STATE))
def test_class_state_of_another_module_s_base_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    source, compiled, _ = compile_and_run(tmp_path, CLASS_STATE[case])
    assert compiled == source, case


@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_an_override_the_flow_s_module_never_imports_is_read(
    case: str, tmp_path: Path
) -> None:
    source, compiled, codes = compile_and_run(tmp_path, OVERRIDES[case])
    assert source == ["HI", "hi"], case
    assert compiled == source, case
    unread = "KLN405" in codes  # a call that may run an override there is kept
    assert unread == (case == "a_name_kiln_cannot_tell"), codes


def test_the_warning_names_the_import_kiln_cannot_follow(tmp_path: Path) -> None:
    _write(tmp_path, OVERRIDES["a_name_kiln_cannot_tell"])
    compilation = compile_file(tmp_path / "app" / "m.py")
    [warning] = [d for d in compilation.diagnostics if d.code is Code.UNREAD_IMPORT]
    assert warning.span.path.endswith("base.py")
    assert (warning.span.line, warning.span.column) == (14, 11)
    assert "cannot tell which module this imports" in warning.message


def test_a_package_outside_the_project_is_not_warned_about(tmp_path: Path) -> None:
    """An installed package's modules are read as any import of one is: no
    override of the project's is there to find."""
    files = _agents('f"json.{kind}"', kind='"decoder"')
    _write(tmp_path, files)
    compilation = compile_file(tmp_path / "app" / "m.py")
    assert compilation.output is not None
    assert Code.UNREAD_IMPORT not in {d.code for d in compilation.diagnostics}


def test_an_import_kiln_cannot_tell_costs_nothing_where_no_call_may_run_it(
    tmp_path: Path,
) -> None:
    """No project method is called: what the module defines cannot run, so no
    warning, and the nodes keep their overlap."""
    files = _agents("kind", kind='"app.agents.loud"')
    files["app/m.py"] = _flow(
        "from app.agents.base import STATUS", "len(STATUS)", "len(STATUS)"
    )
    _write(tmp_path, files)
    compilation = compile_file(tmp_path / "app" / "m.py")
    assert compilation.output is not None
    assert compilation.diagnostics == ()
