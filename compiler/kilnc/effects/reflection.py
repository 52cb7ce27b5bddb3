"""State reached by name at run time, written as the plain access it is.

Example input (a node's body)::

    getattr(Config, "items").append(key)
    vars(app.cache)["SEEN"][key] = 4
    app.cache.__dict__["SEEN"].clear()
    globals()["LAST"] = key
    sys.modules["app.cache"].SEEN.clear()

`unreflected` reads each as `Config.items.append(key)`, `app.cache.SEEN[key]
= 4`, `app.cache.SEEN.clear()`, `LAST = key` and
`importlib.import_module("app.cache").SEEN.clear()`: module state by its name,
as kiln reads the plain access. An attribute kiln cannot name
(`getattr(Config, name)`) is any of them: `Config.__dict__`, the class's state.
"""

from __future__ import annotations

import libcst as cst

from kilnc.syntax import dotted


def unreflected(node: cst.BaseExpression) -> cst.BaseExpression:
    """`node` with each reflective access along its chain made plain (above)."""
    if isinstance(node, cst.Attribute):
        inner = unreflected(node.value)
        return node if inner is node.value else node.with_changes(value=inner)
    if isinstance(node, cst.Subscript):
        key = _literal_key(node)
        # `vars(X)["k"]`: X's attribute; asked first, `vars(X)` alone being `X`.
        namespace = _namespace_of(node.value) if key is not None else None
        if namespace is not None and key is not None:
            return cst.Attribute(value=unreflected(namespace), attr=cst.Name(key))
        inner = unreflected(node.value)
        if key is not None and _called(inner, "globals", 0):
            return cst.Name(key)
        module = _module_key(node)
        if module is not None and dotted(inner) == "sys.modules":
            return _imported(module)
        return node if inner is node.value else node.with_changes(value=inner)
    if isinstance(node, cst.Call) and _called(node, "vars", 1):  # `d = vars(U)`
        return unreflected(node.args[0].value)
    if isinstance(node, cst.Call) and dotted(node.func) == "getattr":
        if len(node.args) < 2 or node.args[0].keyword is not None:
            return node
        owner = unreflected(node.args[0].value)
        name = node.args[1].value
        text = name.evaluated_value if isinstance(name, cst.SimpleString) else None
        if not (isinstance(text, str) and text.isidentifier()):
            text = "__dict__"
        return cst.Attribute(value=owner, attr=cst.Name(text))
    return node


def _module_key(node: cst.Subscript) -> cst.BaseExpression | None:
    """The module a subscript of `sys.modules` names: `"app.settings"`, or
    `__name__`, the module's own."""
    match node.slice:
        case [cst.SubscriptElement(slice=cst.Index(value=cst.SimpleString() as key))]:
            return key
        case [cst.SubscriptElement(slice=cst.Index(value=cst.Name("__name__") as key))]:
            return key
    return None


def _imported(module: cst.BaseExpression) -> cst.Call:
    """`importlib.import_module("app.settings")`: the module, as kiln reads it."""
    func = cst.Attribute(cst.Name("importlib"), cst.Name("import_module"))
    return cst.Call(func, [cst.Arg(module)])


def _namespace_of(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """The object whose attributes a namespace holds: `X` of `vars(X)` and
    `X.__dict__`; None for no namespace."""
    if isinstance(node, cst.Attribute) and node.attr.value == "__dict__":
        return node.value
    if isinstance(node, cst.Call) and _called(node, "vars", 1):
        return node.args[0].value
    return None


def _called(node: cst.BaseExpression, builtin: str, arity: int) -> bool:
    return (
        isinstance(node, cst.Call)
        and dotted(node.func) == builtin
        and len(node.args) == arity
    )


def _literal_key(node: cst.Subscript) -> str | None:
    """The string a subscript reads, where it is a literal name: `"SEEN"`."""
    match node.slice:
        case [cst.SubscriptElement(slice=cst.Index(value=cst.SimpleString() as key))]:
            text = key.evaluated_value
            return text if isinstance(text, str) and text.isidentifier() else None
    return None
