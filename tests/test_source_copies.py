"""One object of the source run is one object of the compiled run, across modules.

A compiled module copies the module-level state and classes its nodes use
(`build.app.reports.OUTBOX` is not `app.reports.OUTBOX`). The compiled modules
of one compile import each other's outputs, but a module without flows has no
output: the compiled modules import it from its source, and what it imports is
the source's. kiln once let `app/stats.py` read the source's `OUTBOX` while the
compiled `publish` appended to the compiled one (source [1, 2], compiled [0, 0]),
let a class check miss an instance a compiled node made, imported a node's
fallback and `retry_on` classes of another compiled module from its source, and
left a compiled module's import in a node's body pointing at the source.

Each project is compiled with the real `kiln` command, and its flow run from
the source and from the output in fresh interpreters (tests/test_packages.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from tests.diagnostic_shape import parse_report
from tests.test_packages import _kiln, _python

REPORTS = """\
    from kiln import flow, node

    OUTBOX: list[str] = []
    LIMIT = 3


    class Report:
        def __init__(self, title: str) -> None:
            self.title = title


    class ReportError(Exception):
        pass


    def slug(text: str) -> str:
        return text.lower()[:LIMIT]


    def count() -> int:
        return len(OUTBOX)


    @node
    def publish(text: str) -> Report:
        OUTBOX.append(text)
        return Report(text)


    @node
    def fail(text: str) -> None:
        raise ReportError(text)


    @flow
    def one(text: str) -> int:
        publish(text)
        return len(OUTBOX)
    """

FLOWS = """\
    from kiln import flow

    from app.reports import publish
    from app.stats import probe


    @flow
    def main(a: str, b: str) -> list[str]:
        first = publish(a)
        n1 = probe(first)
        second = publish(b)
        n2 = probe(second)
        return [n1, n2]
    """


def write(root: Path, files: dict[str, str]) -> Path:
    files = {
        "pyproject.toml": '[tool.kiln]\nsources = ["app"]\noutput = "build"\n',
        "app/__init__.py": "",
        "app/reports.py": REPORTS,
        "app/flows.py": FLOWS,
        **files,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(dedent(text))
    return root


def both_runs(root: Path, flow: str = "app.flows") -> tuple[object, object]:
    """The flow's result run from the source, and from the output."""
    code = "import json\nfrom {} import main\nprint(json.dumps(main('Xy', 'Zw')))"
    source = _python(code.format(flow), root, root)
    compiled = _python(code.format(f"build.{flow}"), root, root)
    return json.loads(source), json.loads(compiled)


def refused(root: Path) -> list[tuple[str, int, str]]:
    done = _kiln("compile", cwd=root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert not (root / "build" / "app" / "flows.py").exists()
    return [(r.path, r.line, r.code) for r in parse_report(done.stdout)]


def stats(body: str) -> dict[str, str]:
    return {"app/stats.py": "from kiln import node\n" + dedent(body)}


# A module without flows that reads what a compiled module owns, or holds.
SPLIT = {
    "state": (
        """\
        from app.reports import OUTBOX, Report


        @node
        def probe(r: Report) -> str:
            return str(len(OUTBOX))
        """,
        2,
    ),
    "a_class_checked": (
        """\
        from app.reports import Report


        @node
        def probe(r: object) -> str:
            return "report" if isinstance(r, Report) else "unknown"
        """,
        2,
    ),
    "a_function_that_reads_the_state": (
        """\
        from app.reports import Report, count


        @node
        def probe(r: Report) -> str:
            return str(count())
        """,
        2,
    ),
    "the_module_whole": (
        """\
        from app import reports


        @node
        def probe(r: reports.Report) -> str:
            return str(len(reports.OUTBOX))
        """,
        2,
    ),
    "an_import_in_a_function": (
        """\
        from app.reports import Report


        @node
        def probe(r: Report) -> str:
            from app.reports import OUTBOX

            return str(len(OUTBOX))
        """,
        7,
    ),
    "an_exception_caught": (
        """\
        from app.reports import ReportError, Report, fail


        @node
        def probe(r: Report) -> str:
            try:
                fail(r.title)
            except ReportError:
                return "caught"
            return "missed"
        """,
        2,
    ),
}


@pytest.mark.parametrize("case", sorted(SPLIT))
def test_a_module_without_flows_reading_a_compiled_module_s_own_is_refused(
    case: str, tmp_path: Path
) -> None:
    body, line = SPLIT[case]
    root = write(tmp_path, stats(body))
    assert ("app/stats.py", line, "KLN404") in refused(root)


def test_the_split_state_of_the_report_is_located_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    root = write(tmp_path, stats(SPLIT["state"][0]))
    done = _kiln("compile", cwd=root)
    assert "app/stats.py:2:25: error: 'OUTBOX' of app.reports is the source's" in (
        done.stdout
    )
    assert "the compiled code uses build.app.reports.OUTBOX, its copy" in done.stdout
    assert "note: keep OUTBOX in a module without flows" in done.stdout


def test_the_chain_of_modules_without_flows_is_followed(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            **stats("""\
                from app.middle import size


                @node
                def probe(r: object) -> str:
                    return str(size())
                """),
            "app/middle.py": """\
                from app.reports import OUTBOX


                def size() -> int:
                    return len(OUTBOX)
                """,
        },
    )
    assert ("app/middle.py", 1, "KLN404") in refused(root)


# What is one object either way: the compile runs as the source does.
SHARED = {
    "state_in_a_module_without_flows": (
        {
            "app/state.py": "OUTBOX: list[str] = []\n",
            "app/reports.py": REPORTS.replace(
                "OUTBOX: list[str] = []", "from app.state import OUTBOX"
            ),
            **stats("""\
                from app.state import OUTBOX


                @node
                def probe(r: object) -> str:
                    return str(len(OUTBOX))
                """),
        },
        ["1", "2"],
    ),
    "state_read_by_two_compiled_modules": (
        {
            "app/state.py": "OUTBOX: list[str] = []\n",
            "app/reports.py": REPORTS.replace(
                "OUTBOX: list[str] = []", "from app.state import OUTBOX"
            ),
            "app/flows.py": """\
                from kiln import flow, node

                from app.reports import publish
                from app.state import OUTBOX


                @node
                def probe(r: object) -> str:
                    return str(len(OUTBOX))


                @flow
                def main(a: str, b: str) -> list[str]:
                    first = publish(a)
                    n1 = probe(first)
                    second = publish(b)
                    n2 = probe(second)
                    return [n1, n2]
                """,
        },
        ["1", "2"],
    ),
    "a_class_in_a_module_without_flows": (
        {
            "app/models.py": """\
                class Report:
                    def __init__(self, title: str) -> None:
                        self.title = title
                """,
            "app/reports.py": dedent(REPORTS).replace(
                dedent("""\
                    class Report:
                        def __init__(self, title: str) -> None:
                            self.title = title
                    """),
                "from app.models import Report\n",
            ),
            **stats("""\
                from app.models import Report


                @node
                def probe(r: object) -> str:
                    return r.title if isinstance(r, Report) else "unknown"
                """),
        },
        ["Xy", "Zw"],
    ),
    "a_constant_and_a_function_of_constants": (
        stats("""\
            from app.reports import LIMIT, slug


            @node
            def probe(r: object) -> str:
                return slug("ABCDEF") + str(LIMIT)
            """),
        ["abc3", "abc3"],
    ),
    "a_class_named_in_annotations_only": (
        stats("""\
            from typing import TYPE_CHECKING

            from app.reports import Report

            if TYPE_CHECKING:
                from app.reports import OUTBOX as OUTBOX


            @node
            def probe(r: Report) -> str:
                return r.title
            """),
        ["Xy", "Zw"],
    ),
}


@pytest.mark.parametrize("case", sorted(SHARED))
def test_what_is_one_object_either_way_compiles_and_runs_as_the_source(
    case: str, tmp_path: Path
) -> None:
    files, expected = SHARED[case]
    root = write(tmp_path, files)
    done = _kiln("compile", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KLN404" not in done.stdout
    source, compiled = both_runs(root)
    assert source == compiled == expected


def test_a_compiled_module_s_import_in_a_node_s_body_is_of_the_output(
    tmp_path: Path,
) -> None:
    root = write(
        tmp_path,
        {"app/flows.py": """\
                from kiln import flow, node

                from app.reports import publish


                @node
                def probe(r: object) -> str:
                    from app.reports import OUTBOX

                    return str(len(OUTBOX))


                @flow
                def main(a: str, b: str) -> list[str]:
                    first = publish(a)
                    n1 = probe(first)
                    second = publish(b)
                    n2 = probe(second)
                    return [n1, n2]
                """},
    )
    done = _kiln("compile", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    output = (root / "build" / "app" / "flows.py").read_text()
    assert "    from build.app.reports import OUTBOX\n" in output
    source, compiled = both_runs(root)
    assert source == compiled == ["1", "2"]


def test_another_compiled_module_s_fallback_and_retry_classes_are_its_output_s(
    tmp_path: Path,
) -> None:
    # The compiled `publish` raises build.app.reports.Flaky; a Policy naming the
    # source's Flaky never retried it, and the source's fallback appended to the
    # source's OUTBOX.
    root = write(
        tmp_path,
        {
            "app/reports.py": """\
                from kiln import flow, node

                OUTBOX: list[str] = []


                class Flaky(Exception):
                    pass


                def on_error(text: str, error: Exception) -> int:
                    OUTBOX.append("fallback")
                    return -1


                @node(retries=2, wait=0, retry_on=(Flaky,))
                def publish(text: str) -> int:
                    OUTBOX.append(text)
                    if len(OUTBOX) == 1:
                        raise Flaky("once")
                    return len(OUTBOX)


                @node(fallback=on_error)
                def risky(text: str) -> int:
                    raise ValueError(text)


                @flow
                def one(text: str) -> int:
                    return publish(text)
                """,
            "app/flows.py": """\
                from kiln import flow

                from app.reports import publish, risky


                @flow
                def main(a: str, b: str) -> list[int]:
                    n = publish(a)
                    r = risky(b)
                    return [n, r]
                """,
        },
    )
    done = _kiln("compile", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    output = (root / "build" / "app" / "flows.py").read_text()
    assert "from build.app.reports import Flaky as _KILN_CLASS_FLAKY" in output
    assert "from build.app.reports import on_error as _KILN_FALLBACK_ON_ERROR" in (
        output
    )
    ran = _python(
        """\
        import json
        from build.app import reports
        from build.app.flows import main
        print(json.dumps([main("a", "b"), reports.OUTBOX]))
        """,
        root,
        root,
    )
    assert json.loads(ran) == [[2, -1], ["a", "a", "fallback"]]


def test_a_compiled_module_importing_the_source_package_is_told_the_form_to_write(
    tmp_path: Path,
) -> None:
    flows = """\
        {import_line}
        from kiln import flow, node

        from app.reports import publish


        @node
        def probe(r: object) -> str:
            return str(len({reports}.OUTBOX))


        @flow
        def main(a: str, b: str) -> list[str]:
            first = publish(a)
            n1 = probe(first)
            second = publish(b)
            n2 = probe(second)
            return [n1, n2]
        """
    first = flows.format(import_line="import app.reports", reports="app.reports")
    root = write(tmp_path, {"app/flows.py": first})
    done = _kiln("compile", cwd=root)
    assert done.returncode == 1, done.stdout
    assert ("app/flows.py", 1, "KLN404") in [
        (r.path, r.line, r.code) for r in parse_report(done.stdout)
    ]
    assert "`import app.reports` binds the source package app" in done.stdout
    assert "`import app.reports as reports`" in done.stdout
    (root / "app/flows.py").write_text(
        dedent(flows.format(import_line="from app import reports", reports="reports"))
    )
    done = _kiln("compile", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    source, compiled = both_runs(root)
    assert source == compiled == ["1", "2"]


def test_a_package_s_reexport_of_a_compiled_module_s_node_is_refused(
    tmp_path: Path,
) -> None:
    # `from app import publish` takes the source's `publish`, which appends to
    # the source's OUTBOX; the compiled flow `one` of app.reports reads its own.
    root = write(
        tmp_path,
        {
            "app/__init__.py": "from .reports import publish\n",
            **stats("""\
                from app.reports import Report


                @node
                def probe(r: Report) -> str:
                    return r.title
                """),
            "app/flows.py": FLOWS.replace(
                "from app.reports import publish", "from app import publish"
            ),
        },
    )
    done = _kiln("compile", cwd=root)
    assert done.returncode == 1, done.stdout
    found = [(r.path, r.line, r.code) for r in parse_report(done.stdout)]
    assert ("app/flows.py", 3, "KLN404") in found
    assert "it is imported through app, which has no output" in done.stdout
    assert "import it from app.reports" in done.stdout
