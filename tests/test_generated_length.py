"""A compiled flow's body stays a small multiple of its source: the goldens' ratio holds.

A reviewer reads the method that runs a compiled flow's body (`aforward`,
`forward`, `astream` or `stream`) beside the source flow. Beyond the source's
own statements it holds only what concurrency needs: the `with` that binds
the calls, the tasks and their scope, the visit counts of loops (a line a
call site, `next(review_visits)`), the operands evaluated before a lifted
call; and, for mypy, the flow's checks a task repeats. Summed over every
golden's flows, its lines were 2.67 times the source's on 2026-12-05 (4.08
times at the start of 2026-12-04), and 2.75 once narrowing.test and
generics.test came in, whose short flows are the ones that need a task to
repeat a check (an `if _kiln.TYPE_CHECKING:` and an assert) or that call generic nodes; the
bound below holds that, so that a change adding scaffolding to every flow is
made on purpose.
"""

from __future__ import annotations

import ast

from tests.goldens import DATA, load_cases

RATIO = (
    2.3  # 2.41 once tasks read what main awaited; 2.21 once names bound fit one line
)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The lines of a function's body, its docstring left out."""
    body = function.body
    if (
        len(body) > 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    last = body[-1].end_lineno
    assert last is not None
    return last - body[0].lineno + 1


def source_flows(source: str) -> dict[str, int]:
    """By name, the body lines of each function a `@flow` decorates."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        decorators = [
            d.func if isinstance(d, ast.Call) else d
            for d in getattr(node, "decorator_list", [])
        ]
        if isinstance(node, FUNCTIONS) and any(
            isinstance(d, ast.Name) and d.id == "flow" for d in decorators
        ):
            found[node.name] = body_lines(node)
    return found


def compiled_bodies(output: str) -> list[int]:
    """The body lines of the method running each compiled flow's body: its class's first."""
    found = []
    for cls in ast.parse(output).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        methods = [m for m in cls.body if isinstance(m, FUNCTIONS)]
        if methods and methods[0].name in ("aforward", "forward", "astream", "stream"):
            found.append(body_lines(methods[0]))
    return found


def test_the_compiled_bodies_of_the_goldens_stay_within_the_ratio() -> None:
    source_total = compiled_total = 0
    for path in sorted(DATA.glob("*.test")):
        for case in load_cases(path):
            if not case.expected:
                continue
            flows = source_flows(case.source)
            compiled = compiled_bodies(case.expected)
            assert len(compiled) == len(flows), case.name
            source_total += sum(flows.values())
            compiled_total += sum(compiled)
    assert source_total > 100  # the goldens' flows, not a handful
    assert compiled_total <= RATIO * source_total, compiled_total / source_total
