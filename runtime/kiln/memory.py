"""`Memory`: shared state with a global store and a per-branch local store.

BrainyFlow's semantics, which flows rely on to pass state between steps:

- reads (``memory.x``, ``memory["x"]``) look in the local store, then the global;
- writes go to the global store and drop a local value of the same key, so the
  next read sees what was written;
- ``memory.local`` writes stay in the local store;
- ``memory.clone(forking_data)`` makes a branch: same global store, a deep copy
  of the local store updated with a deep copy of ``forking_data``.

The global dict is shared by reference: it is the caller's own dict, and every
clone writes to it. The compiler treats a Memory as a state token: steps passed
the same Memory keep their source order, clones may run concurrently.

Unlike BrainyFlow's, this Memory is not generic (``Memory[M](...)`` made
`typing` store a stray ``__orig_class__`` key in the user's dict), and dunder
attributes are never looked up in or written to the stores.
"""

from __future__ import annotations

import copy
import reprlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar, Final, Self

from kiln.errors import ReservedNameError

__all__ = ["RESERVED_NAMES", "LocalView", "Memory"]

#: Names that `Memory` keeps for its own attributes. A store key of one of these
#: names could be written but never read back as an attribute, so writes of
#: them are refused. (``get`` is reserved for the same reason.)
RESERVED_NAMES: Final = frozenset(
    {"global", "local", "_global", "_local", "clone", "create", "get"}
)

# The order a store's reserved keys are named in, the same from run to run.
_RESERVED_IN_ORDER: Final = tuple(sorted(RESERVED_NAMES))


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _check_writable(key: object) -> None:
    if key in RESERVED_NAMES:
        raise ReservedNameError(
            f"{key!r} is reserved by Memory (reserved: {', '.join(sorted(RESERVED_NAMES))}); "
            "store the value under another key"
        )


def _checked_store(store: object, which: str) -> dict[str, Any]:
    """A store given to the constructor: a dict (a new one for None) without reserved keys.

    Refused as a write of the key would be: a reserved key could never be read
    back as an attribute, which would read Memory's own instead.
    """
    if store is None:
        return {}
    if not isinstance(store, dict):
        raise TypeError(
            f"Memory's {which} store must be a dict of keys to values, or None; "
            f"got {type(store).__name__} {reprlib.repr(store)}"
        )
    for key in _RESERVED_IN_ORDER:  # a few lookups, whatever the size of the store
        if key in store:
            _check_writable(key)
    return store


def _missing(key: object) -> str:
    return (
        f"{key!r} is in neither the local nor the global store of this Memory; "
        f"write it first, or read it with memory.get({key!r}, default)"
    )


class Memory:
    """A global store shared by reference and a local store private to a branch."""

    __slots__ = ("_global", "_local")
    # A __getitem__ without __iter__ would make Python iterate by integer keys.
    __iter__: ClassVar[None] = None

    _global: dict[str, Any]
    _local: dict[str, Any]

    def __init__(
        self,
        global_store: dict[str, Any] | None = None,
        local: dict[str, Any] | None = None,
    ) -> None:
        # Our own __setattr__ writes to the stores, so set the slots directly.
        object.__setattr__(self, "_global", _checked_store(global_store, "global"))
        object.__setattr__(self, "_local", _checked_store(local, "local"))

    @classmethod
    def create(
        cls, global_store: dict[str, Any] | None, local: dict[str, Any] | None = None
    ) -> Self:
        """Build a Memory; BrainyFlow's spelling of the constructor."""
        return cls(global_store, local)

    @property
    def local(self) -> LocalView:
        """The local store, as a mapping whose writes stay local."""
        return LocalView(_local_of(self))

    def clone(self, forking_data: Mapping[str, Any] | None = None) -> Self:
        """A branch: the same global store, a deep copy of the local store.

        `forking_data` (deep-copied as well) is merged into the new local store,
        so a branch can be given values that its siblings do not see.
        """
        local = _local_of(self)
        branch = copy.deepcopy(local) if local else {}
        if forking_data:
            for key in forking_data:
                _check_writable(key)
            branch.update(copy.deepcopy(dict(forking_data)))
        return self.create(_global_of(self), branch)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key` (local first, then global), or `default`."""
        local = _local_of(self)
        if key in local:
            return local[key]
        return _global_of(self).get(key, default)

    def __getattribute__(self, name: str) -> Any:
        # Store keys are looked up before the class, so a read costs two dict
        # lookups. (Normal lookup with a __getattr__ fallback is simpler, but on
        # Python 3.11 every store read would first fail a lookup and build an
        # AttributeError: four times slower.) Memory's own attributes and every
        # dunder never reach the stores: copy, pickle and typing probe dunders.
        if name in _OWN_ATTRIBUTES or name.startswith("__"):
            return _generic_getattr(self, name)
        local = _local_of(self)
        if name in local:
            return local[name]
        store = _global_of(self)
        if name in store:
            return store[name]
        try:
            return _generic_getattr(self, name)  # an attribute of a subclass
        except AttributeError:
            raise AttributeError(_missing(name), name=name, obj=self) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if _is_dunder(name):
            object.__setattr__(
                self, name, value
            )  # AttributeError: Memory has slots only
            return
        self[name] = value

    def __delattr__(self, name: str) -> None:
        if _is_dunder(name):
            object.__delattr__(self, name)
            return
        try:
            del self[name]
        except KeyError:
            raise AttributeError(_missing(name), name=name, obj=self) from None

    def __getitem__(self, key: str) -> Any:
        local = _local_of(self)
        if key in local:
            return local[key]
        try:
            return _global_of(self)[key]
        except KeyError:
            raise KeyError(_missing(key)) from None

    def __setitem__(self, key: str, value: Any) -> None:
        _check_writable(key)
        _local_of(self).pop(key, None)
        _global_of(self)[key] = value

    def __delitem__(self, key: str) -> None:
        _check_writable(key)
        found_local = _local_of(self).pop(key, _ABSENT) is not _ABSENT
        found_global = _global_of(self).pop(key, _ABSENT) is not _ABSENT
        if not (found_local or found_global):
            raise KeyError(_missing(key))

    def __contains__(self, key: object) -> bool:
        return key in _local_of(self) or key in _global_of(self)

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(global_store={_global_of(self)!r}, local={_local_of(self)!r})"

    def __reduce__(self) -> tuple[type[Memory], tuple[dict[str, Any], dict[str, Any]]]:
        # The default reduction restores slots through __setattr__, which would
        # write into the stores; rebuild through the constructor instead.
        return (type(self), (_global_of(self), _local_of(self)))


# The methods above read their slots through the slot descriptors: `self._local`
# would go through Memory.__getattribute__ and cost a Python-level call.
_local_of: Final[Callable[[Memory], dict[str, Any]]] = vars(Memory)["_local"].__get__
_global_of: Final[Callable[[Memory], dict[str, Any]]] = vars(Memory)["_global"].__get__
_generic_getattr: Final = object.__getattribute__
_OWN_ATTRIBUTES: Final = frozenset(dir(Memory))


class LocalView(MutableMapping[str, Any]):
    """The local store of a Memory: item and attribute writes stay local.

    A full mapping (``len``, ``keys()``, ``update()``, ``==`` against a dict).
    Attribute reads look in the local store only; attribute writes of the
    mapping's own method names are refused, since they could not be read back.
    """

    __slots__ = ("_store",)

    _store: dict[str, Any]

    def __init__(self, store: dict[str, Any]) -> None:
        object.__setattr__(self, "_store", store)

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        _check_writable(key)
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __getattr__(self, name: str) -> Any:
        if _is_dunder(name) or name == "_store":
            raise AttributeError(name, name=name, obj=self)
        try:
            return self._store[name]
        except KeyError:
            raise AttributeError(
                f"{name!r} is not in the local store", name=name, obj=self
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if _is_dunder(name):
            object.__setattr__(self, name, value)
            return
        _check_writable(name)
        if name in _VIEW_ATTRIBUTES:
            raise ReservedNameError(
                f"{name!r} names a method of memory.local; "
                f"write memory.local[{name!r}] = ... instead"
            )
        self[name] = value

    def __delattr__(self, name: str) -> None:
        if _is_dunder(name):
            object.__delattr__(self, name)
            return
        try:
            del self._store[name]
        except KeyError:
            raise AttributeError(
                f"{name!r} is not in the local store", name=name, obj=self
            ) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"


_ABSENT: Final = object()
_VIEW_ATTRIBUTES: Final = frozenset(
    name for name in dir(LocalView) if not _is_dunder(name)
)
