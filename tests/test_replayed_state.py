"""A call that is not run skips its changes of module state: kiln refuses such nodes.

A cache hit (and an identical call already in flight, which waits for the
first) returns the stored value without running the node, and a durable run
replays a journaled call's value without running it. A node that changes
module state (`HISTORY.append(p)`, `SETTINGS["mode"] = m`, `global MODE`, a
helper's change, a method of a module-level object that changes it) would
leave that state as it was, and the flow, a later node or the caller would
compute something else: a `cache=True` call of such a node is a compile error
(KLN112), and a durable instance of a flow that calls one is refused when it
is made (`DurableRunError`), naming the node, the change and where it is made.
Reads stay allowed, and so do a client's requests, an item handed to a
library's call and a fill (a memo, a lazy client) that every other use of its
state in the flow fills too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kiln import DurableRunError
from kilnc.diagnostics import Diagnostic
from kilnc.pipeline import compile_file
from tests.diagnostic_shape import parse_report
from tests.test_cli import kiln
from tests.test_differential import compiled_and_source

HEAD = """\
from kiln import flow, node

HISTORY: list[str] = []
SETTINGS: dict[str, str] = {"mode": "prod"}
MODE = "prod"
TOTALS: dict[str, int] = {}
CACHE: dict[str, str] = {}


class Store:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def put(self, row: str) -> None:
        self.rows.append(row)


STORE = Store()


def remember(p: str) -> None:
    HISTORY.append(p)


"""

# Each node's change of module state, and what the refusal says of it.
CHANGING = {
    "append": (
        "HISTORY.append(p)",
        "adds to the module state 'app.HISTORY' (calls HISTORY.append",
    ),
    "item": (
        'SETTINGS["mode"] = p',
        "changes the module state 'app.SETTINGS' (assigns SETTINGS[\"mode\"]",
    ),
    "rebinding": (
        "global MODE\n    MODE = p",
        "changes the module state 'app.MODE' (assigns MODE",
    ),
    "helper": ("remember(p)", "adds to the module state 'app.HISTORY'"),
    "method": (
        "STORE.put(p)",
        "adds to the module state 'app.STORE.rows' (calls self.rows.append",
    ),
    "fold": (
        "TOTALS[p] = TOTALS.get(p, 0) + 1",
        "module state 'app.TOTALS'",
    ),
}

# How a flow calls the node.
CALLS = {
    "call": "    return [await node_(p)]",
    "fan-out": "    return [await node_(q) for q in [p, p]]",
    "branch": "    if p:\n        return [await node_(p)]\n    return []",
}


def source(change: str, call: str, options: str = "cache=True") -> str:
    decorator = f"@node({options})" if options else "@node"
    return (
        f"{HEAD}{decorator}\nasync def node_(p: str) -> str:\n"
        f"    {change}\n    return p\n\n\n"
        f"@flow\nasync def main(p: str) -> list[str]:\n{call}\n"
    )


def compiled(tmp_path: Path, text: str) -> tuple[str | None, list[Diagnostic]]:
    path = tmp_path / "app.py"
    path.write_text(text, encoding="utf-8")
    compilation = compile_file(path)
    return compilation.output, list(compilation.diagnostics)


def refusals(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.code.value == "KLN112"]


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("shape", sorted(CHANGING))
def test_a_cached_node_that_changes_module_state_is_refused_where_it_is_called(
    tmp_path: Path, shape: str, call: str
) -> None:
    change, said = CHANGING[shape]
    output, diagnostics = compiled(tmp_path, source(change, CALLS[call]))
    assert output is None
    [refused] = refusals(diagnostics)
    assert refused.severity.value == "error"
    assert refused.message.startswith("node 'node_' has cache=True and ")
    assert said in refused.message, refused.message
    assert refused.message.endswith(
        "; a cache hit, like an identical call already in flight, returns its "
        "value, not the change"
    )
    assert "app.py:" in refused.message  # where the change is made
    assert refused.hint is not None
    assert "return the value" in refused.hint
    assert "drop cache=True" in refused.hint
    called = source(change, CALLS[call]).splitlines()[refused.span.line - 1]
    assert "await node_(" in called  # at the call


def test_the_refusal_names_where_the_change_is_made(tmp_path: Path) -> None:
    text = source("remember(p)", CALLS["call"])
    _, diagnostics = compiled(tmp_path, text)
    [refused] = refusals(diagnostics)
    line = text.splitlines().index("    HISTORY.append(p)") + 1  # in the helper
    assert f"(calls HISTORY.append, at {tmp_path / 'app.py'}:{line})" in (
        refused.message
    )


QUIET = {
    "a read": "n = len(HISTORY) + len(SETTINGS['mode'])",
    "a client's request": "n = len(str(CLIENT.complete(p, limit=SETTINGS['mode'])))",
    "an item handed to a library": "n = len(urllib.parse.quote(SETTINGS['mode']))",
    "a library object's method": "n = len(ENCODER.encode(p))",
    "a memo every use fills": (
        "if p not in CACHE:\n        CACHE[p] = p * 2\n    n = len(CACHE[p])"
    ),
    "a lazy client": "n = len(str(client()))",
    "a local list": "seen: list[str] = []\n    seen.append(p)",
}
LIBRARY = """\
import urllib.parse

import somelib  # type: ignore[import-not-found]

CLIENT = somelib.Client()
ENCODER = somelib.get_encoding("words")  # holds data, kiln guesses: not a client
_client: object | None = None


def client() -> object:
    global _client
    if _client is None:
        _client = object()
    return _client


"""


@pytest.mark.parametrize("body", QUIET.values(), ids=list(QUIET))
def test_a_cached_node_whose_uses_a_hit_may_skip_is_compiled(
    tmp_path: Path, body: str
) -> None:
    output, diagnostics = compiled(tmp_path, LIBRARY + source(body, CALLS["call"]))
    assert refusals(diagnostics) == []
    assert output is not None, [d.message for d in diagnostics]
    assert "changes_state=" not in output


def test_a_change_beside_a_guess_of_library_code_is_refused(tmp_path: Path) -> None:
    """The history handed to the client may only be read; the append is a change."""
    change = (
        "HISTORY.append(p)\n    CLIENT.complete(messages=HISTORY, n=ENCODER.encode(p))"
    )
    _, diagnostics = compiled(tmp_path, LIBRARY + source(change, CALLS["call"]))
    [refused] = refusals(diagnostics)
    assert "the module state 'app.HISTORY' (calls HISTORY.append, at " in (
        refused.message
    )


def test_a_fill_another_step_reads_unfilled_is_refused(tmp_path: Path) -> None:
    """A hit leaves the memo unfilled; `len(CACHE)` in the flow would see it so."""
    fill = "if p not in CACHE:\n        CACHE[p] = p * 2"
    call = "    out = [await node_(p)]\n    return out + [str(len(CACHE))]"
    _, diagnostics = compiled(tmp_path, source(fill, call))
    [refused] = refusals(diagnostics)
    assert "fills the module state 'app.CACHE'" in refused.message


def test_an_uncached_node_that_changes_module_state_is_compiled(
    tmp_path: Path,
) -> None:
    output, diagnostics = compiled(
        tmp_path, source("HISTORY.append(p)", CALLS["call"], "")
    )
    assert refusals(diagnostics) == []
    assert output is not None
    assert "changes_state=\"adds to the module state 'app.HISTORY'" in output


def test_the_command_shows_the_refusal_with_its_caret(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        source("HISTORY.append(p)", CALLS["fan-out"]), encoding="utf-8"
    )
    result = kiln("compile", "app.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 1
    [reported] = [r for r in parse_report(result.stdout) if r.code == "KLN112"]
    assert (reported.path, reported.severity) == ("app.py", "error")
    assert reported.excerpt is not None
    assert reported.excerpt.strip() == "return [await node_(q) for q in [p, p]]"
    assert "(calls HISTORY.append, at app.py:" in reported.message
    assert "note: return the value and let the flow pass it on" in result.stdout
    assert not (tmp_path / "build" / "app.py").exists()


# --- durable runs -----------------------------------------------------------------


@pytest.mark.parametrize("shape", sorted(CHANGING))
def test_a_durable_run_refuses_a_node_that_changes_module_state(
    tmp_path: Path, shape: str
) -> None:
    change, said = CHANGING[shape]
    module, _ = compiled_and_source(source(change, CALLS["call"], ""), tmp_path)
    with pytest.raises(DurableRunError) as refused:
        type(module.main)(run_id="r1", ledger=tmp_path / "l.db")
    message = str(refused.value)
    assert message.startswith("node 'node_', called at generated_flow.py:")
    assert said.replace("'app.", "'generated_flow.") in message, message
    assert ", at generated_flow.py:" in message  # where the change is made
    assert "a durable run replays a call's value, not its changes" in message
    assert "return the value and let the flow pass it on" in message
    assert message.endswith("or run the flow without a run id")
    assert not (tmp_path / "l.db").exists(), "refused before anything ran"
    assert module.main("x") == ["x"], "without a run id it runs"


def test_a_durable_run_refuses_a_subflow_whose_nodes_change_module_state(
    tmp_path: Path,
) -> None:
    text = source("HISTORY.append(p)", CALLS["call"], "") + (
        "\n\n@flow\nasync def outer(p: str) -> list[str]:\n"
        "    return await main(p) + [str(len(HISTORY))]\n"
    )
    module, _ = compiled_and_source(text, tmp_path)
    with pytest.raises(DurableRunError, match=r"^flow 'main', called at .*HISTORY"):
        type(module.outer)(run_id="r1", ledger=tmp_path / "l.db")


def test_a_durable_run_of_a_node_that_reads_module_state_or_fills_a_memo_runs(
    tmp_path: Path,
) -> None:
    fill = "if p not in CACHE:\n        CACHE[p] = p * 2\n    MODE.upper()"
    module, _ = compiled_and_source(source(fill, CALLS["call"], ""), tmp_path)
    durable = type(module.main)(run_id="r1", ledger=tmp_path / "l.db")
    assert durable("x") == ["x"]
    assert durable("x") == ["x"]  # replayed


# --- the trials' reproducers: refused, where they computed something else ------------

CHAT = """\
from kiln import flow, node

HISTORY: list[str] = []


@node{options}
async def complete(prompt: str) -> str:
    HISTORY.append(prompt)          # the fake client's conversation history
    return prompt[::-1]


@flow
async def chat(ps: list[str]) -> tuple[list[str], list[str]]:
    outs = [await complete(p) for p in ps]
    return outs, list(HISTORY)
"""

SETTINGS_PROJECT = {
    "app/__init__.py": "",
    "app/settings.py": 'SETTINGS: dict[str, str] = {"mode": "prod", "currency": "USD"}\n',
    "app/nodes.py": """\
        from __future__ import annotations

        from pathlib import Path

        from kiln import node

        from .settings import SETTINGS


        @node
        def configure(mode: str) -> str:
            SETTINGS["mode"] = mode          # module state, read by the next node
            return mode


        @node
        def work(x: int, marker: str) -> str:
            m = Path(marker)
            if not m.exists():               # fails the first time only
                m.write_text("x")
                raise RuntimeError("transient failure")
            return f"{x} in {SETTINGS['mode']}"


        @node(cache=True)
        def load_profile(user: str) -> str:
            SETTINGS["currency"] = "EUR" if user.endswith(".de") else "USD"
            return user.upper()


        @node
        def price(amount: int) -> str:
            return f"{amount} {SETTINGS['currency']}"
        """,
    "app/flows.py": """\
        from __future__ import annotations

        from kiln import flow

        from .nodes import configure, work


        @flow
        def job(x: int, mode: str, marker: str) -> str:
            configure(mode)
            return work(x, marker)
        """,
    "app/shop.py": """\
        from __future__ import annotations

        from kiln import flow

        from .nodes import load_profile, price


        @flow
        def checkout(user: str, amount: int) -> str:
            who = load_profile(user)
            return f"{who}: {price(amount)}"
        """,
}


def python(cwd: Path, code: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


def test_q11_a_cached_chat_node_keeping_its_history_is_refused(tmp_path: Path) -> None:
    """Cold, the duplicate call's append was lost; warm, every one."""
    (tmp_path / "cached.py").write_text(CHAT.format(options="(cache=True)"))
    result = kiln("compile", "cached.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "cached.py:14:13: error: node 'complete' has cache=True and adds to the "
        "module state 'cached.HISTORY' (calls HISTORY.append, at cached.py:8)"
    ) in result.stdout
    assert not (tmp_path / "build" / "cached.py").exists()


def test_q11_a_durable_chat_is_refused_and_a_plain_run_matches_the_source(
    tmp_path: Path,
) -> None:
    """Its replay returned `(['ba', 'dc'], [])` where the source gives the history."""
    (tmp_path / "durable.py").write_text(CHAT.format(options=""))
    assert kiln("compile", "durable.py", "-o", "build", cwd=tmp_path).returncode == 0
    args = '["ab", "cd"]'
    source = python(
        tmp_path, f"import asyncio, durable; print(asyncio.run(durable.chat({args})))"
    )
    assert source == "(['ba', 'dc'], ['ab', 'cd'])"
    assert python(tmp_path, f"from build.durable import chat; print(chat({args}))") == (
        source
    )
    refused = python(
        tmp_path,
        "from kiln import DurableRunError\n"
        "from build.durable import Chat\n"
        "try:\n"
        f"    Chat(run_id='r1', ledger='led.db')({args})\n"
        "except DurableRunError as error:\n"
        "    print(error)\n",
    )
    assert refused.startswith(
        "node 'complete', called at durable.py:14, adds to the module state "
        "'durable.HISTORY' (calls HISTORY.append, at durable.py:8)"
    )
    assert not (tmp_path / "led.db").exists()


def write_project(root: Path) -> None:
    for name, text in SETTINGS_PROJECT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    (root / "pyproject.toml").write_text(
        '[tool.kiln]\nsources = ["app"]\noutput = "build"\nledger = ".kiln/ledger.db"\n'
    )


def test_q12_a_resumed_run_that_replayed_a_settings_write_is_refused(
    tmp_path: Path,
) -> None:
    """`kiln runs resume` computed "1 in prod" where the source computes "1 in dev"."""
    write_project(tmp_path)
    (tmp_path / "app" / "shop.py").unlink()  # the cached node's flow: the next test
    assert kiln("compile", "-q", cwd=tmp_path).returncode == 0
    (tmp_path / "done").touch()
    job = "job(1, 'dev', 'done')"
    assert python(tmp_path, f"from app.flows import job; print({job})") == "1 in dev"
    assert python(tmp_path, f"from build.app.flows import job; print({job})") == (
        "1 in dev"
    )
    run = kiln(
        "run", "build/app/flows.py:job", "x=1", "mode=dev", "marker=m", "--run-id", "r1",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1
    assert (
        "node 'configure', called at app/flows.py:10, changes the module state "
        "'app.settings.SETTINGS' (assigns SETTINGS[\"mode\"], at app/nodes.py:12)"
    ) in run.stderr
    assert not (tmp_path / "m").exists(), "refused before anything ran"
    resumed = kiln("runs", "resume", "r1", cwd=tmp_path)
    assert resumed.returncode == 1
    assert resumed.stdout == ""


def test_q12_a_cached_profile_node_that_sets_the_currency_is_refused(
    tmp_path: Path,
) -> None:
    """Its warm run priced "5 USD" where the source prices "5 EUR"."""
    write_project(tmp_path)
    result = kiln("compile", "app", "-o", "build", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1
    found = [d for d in json.loads(result.stdout) if d["code"] == "KLN112"]
    assert [(d["path"], d["line"]) for d in found] == [("app/shop.py", 10)]
    assert (
        "'app.settings.SETTINGS' (assigns SETTINGS[\"currency\"], at app/nodes.py:27)"
        in (found[0]["message"])
    )
