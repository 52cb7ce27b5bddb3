"""Memory: BrainyFlow's local/global semantics, checked in detail and against a model."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kiln import Memory, ReservedNameError
from kiln.memory import RESERVED_NAMES, LocalView

RESERVED = sorted(RESERVED_NAMES)


def test_reads_look_in_local_then_global() -> None:
    memory = Memory({"a": "global a", "b": "global b"}, {"a": "local a"})
    assert memory.a == memory["a"] == memory.get("a") == "local a"
    assert memory.b == memory["b"] == "global b"
    assert memory.get("missing") is None
    assert memory.get("missing", 0) == 0


def test_writes_go_to_global_and_drop_the_local_shadow() -> None:
    store: dict[str, Any] = {}
    memory = Memory(store, {"a": 1, "b": 2})
    memory.a = 10
    memory["b"] = 20
    assert store == {"a": 10, "b": 20}
    assert dict(memory.local) == {}
    assert (memory.a, memory.b) == (10, 20)


def test_the_global_store_is_shared_by_reference() -> None:
    store: dict[str, Any] = {"x": 1}
    memory = Memory(store)
    memory.y = 2
    assert store == {"x": 1, "y": 2}
    store["z"] = 3
    assert memory.z == 3
    assert Memory.create(store).y == 2


def test_an_empty_local_dict_is_used_by_reference_too() -> None:
    local: dict[str, Any] = {}
    memory = Memory({}, local)
    memory.local.k = 1
    assert local == {"k": 1}


def test_local_writes_stay_local() -> None:
    store: dict[str, Any] = {"k": "global"}
    memory = Memory(store)
    memory.local["k"] = "item"
    assert memory.k == "item"
    memory.local.j = "attribute"
    assert memory.j == "attribute"
    assert store == {"k": "global"}
    assert memory.local == {"k": "item", "j": "attribute"}


def test_local_view_is_a_mapping_of_the_local_store_only() -> None:
    memory = Memory({"g": 1}, {"a": 1})
    local = memory.local
    assert isinstance(local, LocalView)
    assert "a" in local
    assert "g" not in local
    assert len(local) == 1
    assert list(local) == ["a"]
    local.update(b=2)
    assert local.b == 2
    assert local.get("g") is None
    del local.a
    del local["b"]
    assert len(local) == 0
    assert repr(Memory({}, {"a": 1}).local) == "LocalView({'a': 1})"
    with pytest.raises(AttributeError, match="'g' is not in the local store"):
        _ = local.g
    with pytest.raises(AttributeError, match="'nope' is not in the local store"):
        del local.nope


def test_local_view_refuses_attribute_writes_that_could_not_be_read_back() -> None:
    memory = Memory()
    with pytest.raises(ReservedNameError, match=r"write memory.local\['items'\]"):
        memory.local.items = 1  # type: ignore[method-assign, assignment]
    memory.local["items"] = 1  # item syntax is fine
    assert memory["items"] == 1
    assert memory.items == 1


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_names_are_refused_for_every_kind_of_write(name: str) -> None:
    store: dict[str, Any] = {}
    memory = Memory(store)
    writes: list[Callable[[], object]] = [
        lambda: setattr(memory, name, 1),
        lambda: memory.__setitem__(name, 1),
        lambda: setattr(memory.local, name, 1),
        lambda: memory.local.__setitem__(name, 1),
        lambda: memory.clone({name: 1}),
        lambda: delattr(memory, name),
        lambda: memory.__delitem__(name),
    ]
    for write in writes:
        with pytest.raises(ReservedNameError, match=f"'{name}' is reserved by Memory"):
            write()
    assert store == {}
    assert dict(memory.local) == {}


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_names_are_refused_in_the_stores_a_memory_is_made_with(
    name: str,
) -> None:
    """As a write of them would be: read as attributes, they would read Memory's own."""
    makes: list[Callable[[], object]] = [
        lambda: Memory({name: 1, "x": 2}),
        lambda: Memory({}, {name: 1}),
        lambda: Memory.create({"x": 2}, {name: 1}),
    ]
    for make in makes:
        with pytest.raises(ReservedNameError, match=f"'{name}' is reserved by Memory"):
            make()


@pytest.mark.parametrize(
    ("store", "local", "named"),
    [
        (
            [("a", 1)],
            None,
            "global store must be a dict .*; got list \\[\\('a', 1\\)\\]",
        ),
        ({}, "abc", "local store must be a dict .*; got str 'abc'"),
        (frozenset({"a"}), None, "global store must be a dict"),
    ],
)
def test_a_store_that_is_no_dict_is_a_type_error_when_the_memory_is_made(
    store: Any, local: Any, named: str
) -> None:
    with pytest.raises(TypeError, match=f"^Memory's {named}"):
        Memory(store, local)


def test_reserved_name_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="store the value under another key"):
        Memory().clone = 1  # type: ignore[method-assign, assignment]


def test_missing_keys_raise_errors_that_name_them() -> None:
    memory = Memory()
    with pytest.raises(
        AttributeError, match=r"'absent' is in neither the local nor the global"
    ):
        _ = memory.absent
    with pytest.raises(KeyError, match=r"memory.get\('absent', default\)"):
        _ = memory["absent"]
    assert not hasattr(memory, "absent")
    with pytest.raises(AttributeError, match="'absent'"):
        del memory.absent
    with pytest.raises(KeyError, match="'absent'"):
        del memory["absent"]


def test_deletion_removes_from_local_and_global() -> None:
    store: dict[str, Any] = {"a": 1, "b": 2, "c": 3}
    memory = Memory(store, {"a": 10, "d": 4})
    del memory.a
    del memory["d"]
    del memory.b
    assert store == {"c": 3}
    assert dict(memory.local) == {}
    assert "a" not in memory


def test_contains_sees_both_stores() -> None:
    memory = Memory({"g": 1}, {"l": 2})
    assert "g" in memory
    assert "l" in memory
    assert "x" not in memory


def test_clone_shares_global_and_deep_copies_local() -> None:
    store: dict[str, Any] = {"shared": [1]}
    parent = Memory(store, {"mine": [1], "other": "p"})
    forking = {"branch": [0]}
    child = parent.clone(forking)

    child.local["mine"].append(2)
    child.local["branch"].append(1)
    assert parent.mine == [1]
    assert forking == {"branch": [0]}  # forking data is deep-copied too
    assert "branch" not in parent

    child.written = "by child"
    assert parent.written == "by child"
    assert store["written"] == "by child"
    child.shared.append(2)  # global values are shared, not copied
    assert parent.shared == [1, 2]
    assert child.other == "p"


def test_clone_forking_data_overrides_the_copied_local_values() -> None:
    parent = Memory({}, {"a": 1, "b": 2})
    child = parent.clone({"a": 10})
    assert (child.a, child.b) == (10, 2)
    assert parent.a == 1
    assert parent.clone().local == {"a": 1, "b": 2}


def test_create_and_clone_keep_a_subclass() -> None:
    class Tracked(Memory):
        __slots__ = ()

    memory = Tracked.create({"a": 1})
    assert type(memory) is Tracked
    assert type(memory.clone()) is Tracked


def test_a_subclass_keeps_its_own_attributes() -> None:
    class Counting(Memory):
        __slots__ = ("reads",)

        def summary(self) -> str:
            return f"{len(self.local)} local"

    memory = Counting({"a": 1})
    object.__setattr__(memory, "reads", 0)
    assert memory.summary() == "0 local"
    assert memory.reads == 0
    assert memory.a == 1


def test_private_looking_keys_are_ordinary_keys() -> None:
    store: dict[str, Any] = {}
    memory = Memory(store)
    memory._draft = "text"
    assert memory._draft == "text"
    assert store == {"_draft": "text"}


def test_memory_is_not_generic_and_never_writes_dunders_into_the_store() -> None:
    store: dict[str, Any] = {}
    with pytest.raises(TypeError):
        Memory[dict[str, Any]]  # type: ignore[misc]
    memory = Memory(store)
    with pytest.raises(AttributeError):
        memory.__orig_class__ = "what typing would set"
    assert store == {}


def test_dunder_reads_never_reach_the_stores() -> None:
    # A key that looks like a protocol method must not turn into one.
    memory = Memory({"__deepcopy__": "not a method", "__len__": 3})
    assert memory["__deepcopy__"] == "not a method"
    with pytest.raises(AttributeError):
        _ = memory.__deepcopy__
    assert copy.deepcopy(memory).get("__len__") == 3


def test_copy_deepcopy_and_pickle_round_trip() -> None:
    memory = Memory({"g": [1]}, {"l": [2]})
    shallow = copy.copy(memory)
    assert shallow.g is memory.g
    deep = copy.deepcopy(memory)
    assert deep.g == [1]
    assert deep.g is not memory.g
    assert deep.l == [2]
    restored = pickle.loads(pickle.dumps(memory))
    assert (restored.g, restored.l, restored.local) == ([1], [2], {"l": [2]})


def test_memory_is_not_iterable_by_accident() -> None:
    with pytest.raises(TypeError, match="not iterable"):
        iter(Memory())  # type: ignore[call-overload]


def test_repr_shows_both_stores_and_survives_cycles() -> None:
    store: dict[str, Any] = {"a": 1}
    memory = Memory(store, {"b": 2})
    assert repr(memory) == "Memory(global_store={'a': 1}, local={'b': 2})"
    memory.me = memory
    assert "..." in repr(memory)


def test_memory_has_no_instance_dict() -> None:
    assert not hasattr(Memory(), "__dict__")


# --- against a model ----------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.lists(st.integers(0, 9), max_size=3)
HOW = st.sampled_from(["attribute", "item"])
MISSING = object()


class MemoryModel(RuleBasedStateMachine):
    """Memories and their clones against plain dicts: one global, one local each."""

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[str, Any] = {}
        self.memories = [Memory(self.store)]
        self.model_global: dict[str, Any] = {}
        self.model_locals: list[dict[str, Any]] = [{}]

    def pick(self, index: int) -> tuple[Memory, dict[str, Any]]:
        index %= len(self.memories)
        return self.memories[index], self.model_locals[index]

    def expected(self, local: dict[str, Any], key: str) -> Any:
        if key in local:
            return local[key]
        return self.model_global.get(key, MISSING)

    @rule(index=st.integers(0, 50), key=KEYS, value=VALUES, how=HOW)
    def write(self, index: int, key: str, value: list[int], how: str) -> None:
        memory, local = self.pick(index)
        if how == "attribute":
            setattr(memory, key, value)
        else:
            memory[key] = value
        local.pop(key, None)
        self.model_global[key] = copy.deepcopy(value)

    @rule(index=st.integers(0, 50), key=KEYS, value=VALUES, how=HOW)
    def write_local(self, index: int, key: str, value: list[int], how: str) -> None:
        memory, local = self.pick(index)
        if how == "attribute":
            setattr(memory.local, key, value)
        else:
            memory.local[key] = value
        local[key] = copy.deepcopy(value)

    @rule(index=st.integers(0, 50), key=KEYS, item=st.integers(0, 9))
    def mutate_value(self, index: int, key: str, item: int) -> None:
        memory, local = self.pick(index)
        expected = self.expected(local, key)
        if expected is MISSING:
            return
        memory[key].append(item)
        expected.append(item)

    @rule(index=st.integers(0, 50), key=KEYS, how=HOW)
    def delete(self, index: int, key: str, how: str) -> None:
        memory, local = self.pick(index)

        def remove() -> None:
            if how == "attribute":
                delattr(memory, key)
            else:
                del memory[key]

        if key in local or key in self.model_global:
            remove()
        else:
            with pytest.raises(AttributeError if how == "attribute" else KeyError):
                remove()
        local.pop(key, None)
        self.model_global.pop(key, None)

    @precondition(lambda self: len(self.memories) < 6)
    @rule(index=st.integers(0, 50), forking=st.dictionaries(KEYS, VALUES, max_size=2))
    def clone(self, index: int, forking: dict[str, list[int]]) -> None:
        memory, local = self.pick(index)
        self.memories.append(memory.clone(forking))
        model = copy.deepcopy(local)
        model.update(copy.deepcopy(forking))
        self.model_locals.append(model)

    @rule(index=st.integers(0, 50), key=KEYS)
    def read(self, index: int, key: str) -> None:
        memory, local = self.pick(index)
        expected = self.expected(local, key)
        assert (key in memory) is (expected is not MISSING)
        if expected is MISSING:
            with pytest.raises(AttributeError):
                getattr(memory, key)
            with pytest.raises(KeyError):
                memory[key]
            assert memory.get(key, MISSING) is MISSING
        else:
            assert getattr(memory, key) == memory[key] == memory.get(key) == expected

    @invariant()
    def stores_match_the_model(self) -> None:
        assert self.store == self.model_global
        for memory, local in zip(self.memories, self.model_locals, strict=True):
            assert dict(memory.local) == local
            assert memory._global is self.store  # one global dict, never copied


MemoryModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
test_memory_against_a_dict_model = MemoryModel.TestCase
