"""The statements and expressions of one body, each recorded as the effect it has.

Example input: `state["answer"] = 42`, `memory.seen.append(tag)`,
`log.info("filled")`, `helper(state)`. Output, on the `Body`: a change of
`state` ("assigns state['answer']"), a write of the Memory key `seen`, an
outside effect (logging), and whatever `helper`'s own effects do to what it
is passed ("passes it to helper, which ...").
"""

from __future__ import annotations

import libcst as cst

from kilnc.effect_ir import ANY_KEY, EVERY_KEY, Change, MemoryUse
from kilnc.effects.body import Body
from kilnc.effects.data_holders import change_views, computes_data, reads_data
from kilnc.effects.handed import called_through, handed, hands_changes
from kilnc.effects.implicit import (
    IN_PLACE,
    entered,
    got,
    implicit_call,
    item_read,
    iterated,
    stored,
)
from kilnc.effects.kept import hand_back, keep
from kilnc.effects.library_objects import opaque, sets_context
from kilnc.effects.log_handlers import logging_call
from kilnc.effects.operators import OperatorVisitor
from kilnc.effects.project_calls import (
    assume_dict,
    project_call,
    project_method,
    read_items,
)
from kilnc.effects.receivers import (
    candidates,
    class_receiver,
    describe,
    inserts_on_read,
    into_state,
    is_module,
    through_class,
)
from kilnc.effects.state_uses import (
    environment_call,
    read_reflected,
    returned_state,
)
from kilnc.effects.unseen_calls import builtin_call, iterate, reads_whole, unknown_call
from kilnc.mutability import (
    LOGGING,
    MUTATING_LIBRARY,
    MUTATING_METHODS,
    PURE_METHODS,
    consumes,
    is_pure,
)
from kilnc.names import BUILTINS, identifier, target_names
from kilnc.syntax import code


class EffectVisitor(OperatorVisitor):  # and what operators run (operators.py)
    """Records, for one body, every change, Memory key and outside effect."""

    def __init__(self, body: Body) -> None:
        self.body = body
        # Names that are no reads of a variable (an attribute's, a keyword's), and
        # the functions of calls: a class's method called reads no class state.
        self._not_read: set[cst.CSTNode] = set()
        self._called: set[cst.CSTNode] = set()
        self._owners: set[cst.CSTNode] = set()  # what an attribute is read of
        self._set: set[cst.CSTNode] = set()  # attributes assigned, deleted: not read
        self._globals: set[str] = set()  # names the body declares `global`

    # --- stores -------------------------------------------------------------------

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._store(target.target, "assigns")
            self._kept(target.target, node.value)
            if isinstance(target.target, cst.Attribute | cst.Subscript):
                keep(self.body, target.target, node.value)
            if isinstance(target.target, cst.Tuple | cst.List):  # `a, b = items`
                iterate(self.body, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._store(node.target, "assigns")
        if node.value is not None:
            self._kept(node.target, node.value)
            if isinstance(node.target, cst.Attribute | cst.Subscript):
                keep(self.body, node.target, node.value)

    def _kept(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        """`REG[k] = a`, `Config.agent = a`, a `global`'s `CURRENT = a`: what the
        value holds is module state from then on."""
        body = self.body
        if isinstance(target, cst.Name):
            stored = identifier(target.value) in self._globals
        else:
            stored = body.is_module_state(target)
        if stored:
            body.escape(value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        target = node.target
        if isinstance(target, cst.Name):
            # `x += y` changes a list in place; a number it only rebinds.
            operator = code(node.operator).strip()  # `+=`, `|=`
            reason = f"changes {code(target)} in place ({operator})"
            self.body.change(target, reason, node, itself=True)
            if self.body.is_module_state(target):
                self.body.external(f"changes the module's {code(target)}", node)
        else:
            self._store(target, "changes")
            # `memory.log += [x]`: a list at the key changes in place.
            if isinstance(target, cst.Attribute | cst.Subscript) and (
                self.body.token(target.value) or self.body.local_view(target.value)
            ):
                self.body.change(target, f"changes {code(target)}", node, itself=True)
        self._kept(target, node.value)
        keep(self.body, target, node.value)
        operator = IN_PLACE[code(node.operator).strip()]  # `Acc.__iadd__`, if any
        implicit_call(self.body, node, target, operator, [node.value])

    def visit_Del(self, node: cst.Del) -> None:
        self._store(node.target, "deletes")
        if target_names(node.target):
            # `del raw` unbinds a name of the frame it runs in: the flow's own.
            self.body.external(f"deletes {code(node.target)}", node)

    def _store(self, target: cst.BaseExpression, verb: str) -> None:
        if isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._store(element.value, verb)
            return
        if isinstance(target, cst.StarredElement):
            self._store(target.value, verb)
            return
        if not isinstance(target, cst.Attribute | cst.Subscript):
            return
        if verb != "changes":  # `x.n += 1` reads `x.n` first (a property's getter)
            self._set.add(target)
        body = self.body
        token = body.token(target.value)
        if token is not None:
            keys = body.keys_of(target)
            body.memory(token, MemoryUse(global_writes=keys, local_writes=keys))
            return
        local = body.local_view(target.value)
        if local is not None:
            body.memory(local, MemoryUse(local_writes=body.keys_of(target)))
            return
        stored(body, target, verb)  # `Box.__setitem__`, a property's setter
        reason = f"{verb} {code(target)}"
        body.change(target.value, reason, target, itself=True, stored=target)
        change_views(body, target, reason)  # `T.reshape(2, 2)[0, 0] = x`
        if body.is_module_state(target):
            body.external(f"{verb} {code(target)}, module state", target)

    # --- reads of Memory keys ---------------------------------------------------------

    def visit_Name(self, node: cst.Name) -> None:
        if node not in self._not_read:
            self.body.read(node)
            if node not in self._called and node not in self._owners:
                handed(self.body, node)  # `to_thread(save, x)`, `map(record, xs)`

    def visit_FormattedStringExpression(
        self, node: cst.FormattedStringExpression
    ) -> None:
        # `f"{memory}"` formats every key.
        token = self.body.token(node.expression)
        if token is not None:
            use = MemoryUse(global_reads=ANY_KEY, local_reads=ANY_KEY)
            self.body.memory(token, use)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._not_read.add(node.keyword)
        if node.star == "*":  # `f(*items)`
            iterate(self.body, node.value)

    def visit_Param(self, node: cst.Param) -> None:
        self._not_read.add(node.name)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        body = self.body
        self._not_read.add(node.attr)
        called = node in self._called
        # `self.now` reads `now`, not all of `self`; `GAUGE.enter()`, a project
        # method, reads what its body does.
        method = called and body.reader.called(body, node) is not None
        if isinstance(node.value, cst.Name) and (
            method or node.value.value == body.receiver
        ):
            self._not_read.add(node.value)
        body.read(node, called=called, method=method)
        if node not in self._set:
            got(body, node)  # `IDS.next_id`: a property's getter
        if not called:
            handed(body, node)  # `to_thread(helpers.save, x)`
            if node.attr.value not in ("__call__", "__wrapped__", "__func__"):
                self._owners.add(node.value)  # `first.log` hands on no `first`
        local = body.local_view(node.value)
        if local is not None:
            body.memory(local, MemoryUse(local_reads=body.keys_of(node)))
            return False
        token = body.token(node.value)
        if token is None:
            return True
        attribute = node.attr.value
        if attribute in ("local", "_local"):
            body.memory(token, MemoryUse(local_reads=ANY_KEY))
        elif attribute not in ("get", "clone"):
            keys = body.keys_of(node)
            body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))
        return True

    def visit_Subscript(self, node: cst.Subscript) -> None:
        body = self.body
        read_reflected(body, node)  # `globals()["BOX"]`: the name it reads
        if node not in self._set:
            item_read(body, node)  # `Box.__getitem__`
        local = body.local_view(node.value)
        token = body.token(node.value)
        if local is not None:
            body.memory(local, MemoryUse(local_reads=body.keys_of(node)))
        elif token is not None:
            keys = body.keys_of(node)
            body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))
        elif inserts_on_read(body, node.value):
            # `groups[key]` of a defaultdict stores the key it misses.
            reason = f"reads {code(node)}, which a defaultdict stores"
            body.change(node.value, reason, node, itself=True)
        else:  # a `dict` or `Mapping` parameter may be a defaultdict: callers decide
            read = Change(f"reads {code(node)}", body.defs.parsed.span(node))
            read_items(body, node.value, read)

    def visit_Comparison(self, node: cst.Comparison) -> None:
        # `"key" in memory`: a read of that key.
        body = self.body
        for target in node.comparisons:
            if not isinstance(target.operator, cst.In | cst.NotIn):
                continue
            iterate(self.body, target.comparator)  # `x in items` reads items up to x
            implicit_call(body, node, target.comparator, "__contains__", [node.left])
            token = body.token(target.comparator)
            if token is None:
                continue
            keys = body.keys_at(node.left)
            body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))

    # --- iteration --------------------------------------------------------------------

    def visit_For(self, node: cst.For) -> None:
        iterate(self.body, node.iter)
        iterated(self.body, node, node.iter)  # `Ids.__iter__`, `Ids.__next__`
        self._store(node.target, "assigns")  # `for d["last"] in xs:` stores into d

    def visit_CompFor(self, node: cst.CompFor) -> None:
        iterate(self.body, node.iter)
        iterated(self.body, node, node.iter)
        self._store(node.target, "assigns")

    def visit_StarredElement(self, node: cst.StarredElement) -> None:
        iterate(self.body, node.value)  # `[*items]`, `a, *rest = ...` handled above

    def visit_With(self, node: cst.With) -> None:
        entered(self.body, node)  # `__enter__` and `__exit__`, or their async twins

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._store(node.asname.name, "assigns")

    # --- calls --------------------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        body = self.body
        func = node.func
        self._called.add(func)
        for arg in node.args:
            # `map(out.append, xs)`: a bound method handed on may change its object.
            handed = arg.value
            if isinstance(handed, cst.Attribute) and handed.attr.value in (
                MUTATING_METHODS
            ):
                reason = f"hands on {code(handed)}"
                body.change(handed.value, reason, node, itself=True)
        hands_changes(body, node)  # `map(add_row, [rows], [row])`
        if isinstance(func, cst.Call):
            # `getattr(d, "update")(...)`, `partial(dict.__setitem__, d)(...)`: what
            # a call returned may be a method of what it was given, or hold it.
            for held in func.args:
                body.change(held.value, f"calls what {code(func)} returned", node)
        if isinstance(func, cst.Attribute) and self._method(node, func):
            return
        if body.owner is not None and class_receiver(body, func):
            func = cst.Name(body.owner)  # `cls(name)` runs what making the class does
        if called_through(body, node):  # `HOOK(x)`, `HANDLERS[kind](x)`
            return
        qualified = body.reader.resolve(body.defs, func)
        if qualified is None:
            unknown_call(self.body, node, code(func))
            return
        if qualified.startswith("builtins."):
            builtin_call(self.body, node, qualified.removeprefix("builtins."))
            return
        target = body.reader.project_function(qualified)
        if target is not None:
            project_call(body, node, body.reader.of_function(*target), code(func))
            return
        if environment_call(body, node, qualified):
            return
        if qualified in MUTATING_LIBRARY and node.args:
            reason = f"passes it to {qualified}"
            body.change(node.args[0].value, reason, node, itself=True)
            return
        if consumes(qualified):  # `islice(lines, 2)`, `deque(items, maxlen=3)`
            for arg in node.args:
                if arg.keyword is None:
                    iterate(self.body, arg.value)
        if is_pure(qualified) or computes_data(qualified, node):
            reads_whole(body, node)  # `copy.deepcopy(memory)`, `json.dumps(memory)`
            return
        if qualified.startswith(LOGGING) or body.reader.is_logger(body.defs, func):
            logging_call(body, node, code(func))
            return
        unknown_call(self.body, node, code(func))

    def _method(self, node: cst.Call, func: cst.Attribute) -> bool:
        """A method of a local value or a parameter; False for a module's function
        and for a builtin class's method called on its object (`list.append(xs, s)`),
        which a call kiln cannot see into changes, arguments and all."""
        body = self.body
        receiver = func.value
        method = func.attr.value
        if isinstance(receiver, cst.Name) and receiver.value in BUILTINS:
            name = identifier(receiver.value)
            bound = name in body.params or name in body.local_names
            if not bound and name not in body.defs.parsed.global_names:
                return False
        token = body.token(receiver)
        if token is not None:
            if method == "get":
                keys = body.keys_at(node.args[0].value if node.args else None)
                body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))
            elif method == "clone":
                body.memory(token, MemoryUse(copies=True))
            else:
                body.memory(token, EVERY_KEY)
            return True
        local = body.local_view(receiver)
        if local is not None:
            use = MemoryUse(local_reads=ANY_KEY)
            if method not in PURE_METHODS:
                use = MemoryUse(local_reads=ANY_KEY, local_writes=ANY_KEY)
                self._keeps(receiver, node)
            body.memory(local, use)
            return True
        if through_class(body, func):
            return False  # `Agent.helper(x)`: a project class's, resolved by name
        target, overrides = candidates(body, func)
        project_method(body, node, func, target, overrides)
        if target is not None:
            return True
        if into_state(body, receiver, method):
            for arg in node.args:  # `REGISTRY.append(a)`: `a` is module state now
                body.escape(arg.value)
        if method == "join":  # ", ".join(parts) consumes an iterator it is given
            for arg in node.args:
                iterate(self.body, arg.value)
        if isinstance(receiver, cst.BaseString):
            return True
        if is_module(body, receiver):
            return False  # json.dumps(...): a module's function, resolved by name
        described = describe(body, func, node)
        if described is not None and method in PURE_METHODS:
            if described.assumed:
                read = Change(f"calls {code(func)}", body.defs.parsed.span(node))
                passed = [arg.value for arg in node.args]
                assume_dict(body, described.assumed, read, passed)
            return True
        if described is not None and method in MUTATING_METHODS:
            body.change(receiver, f"calls {code(func)}", node, itself=True)
            self._keeps(receiver, node)
            return True
        if self._outside(node, func) or reads_data(body, func, node):
            return True
        # A method kiln cannot see into may change its object and its arguments.
        # Not ", which ...": `through` keeps the clause after the last one. One
        # named as a container's change (`append`) says no more than its call.
        unseen = "" if method in MUTATING_METHODS else ", a method kiln cannot see into"
        body.change(
            receiver,
            f"calls {code(func)}{unseen}",
            node,
            opaque=opaque(body, func, node),
        )
        unknown_call(self.body, node, code(func))
        self._keeps(receiver, node)
        return True

    def _outside(self, node: cst.Call, func: cst.Attribute) -> bool:
        """A logger's method, whose effect is outside the program (True), or a
        `ContextVar` set for the code after the body, noted on the way."""
        body, receiver = self.body, func.value
        if func.attr.value == "set" and sets_context(body, receiver):
            body.sets_context(f"sets {code(receiver)}, a ContextVar", node)
        if body.is_module_state(receiver) and body.reader.is_logger(
            body.defs, receiver
        ):
            logging_call(body, node, code(func))
            return True
        return False

    def _keeps(self, receiver: cst.BaseExpression, node: cst.Call) -> None:
        """`memory.log.append(x)`: the receiver may keep what the call is given."""
        for arg in node.args:
            keep(self.body, receiver, arg.value)

    # --- the rest -----------------------------------------------------------------------

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            hand_back(self.body, node.value)

    def visit_Yield(self, node: cst.Yield) -> None:
        if isinstance(node.value, cst.BaseExpression):
            hand_back(self.body, node.value)

    def leave_Return(self, original_node: cst.Return) -> None:
        # On leaving: the calls inside have been read, a constructor's among them.
        if original_node.value is not None:
            returned_state(self.body, original_node.value)

    def leave_Yield(self, original_node: cst.Yield) -> None:
        # What a generator hands out of module state, its loops take: `yield m`.
        if isinstance(original_node.value, cst.BaseExpression):
            returned_state(self.body, original_node.value)

    def visit_Global(self, node: cst.Global) -> None:
        self.body.external("declares a global", node)
        self._globals |= {identifier(item.name.value) for item in node.names}

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        names = {identifier(item.name.value) for item in node.names}
        if names - self.body.defaults.keys():  # not a cell kiln reads (closures.py)
            self.body.external("declares a nonlocal", node)
