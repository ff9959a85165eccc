"""One invocation's state per thread, as Lambda gives one invocation per environment.

On Lambda an execution environment runs one invocation at a time, and handlers may rely on it:
Powertools' REST resolver keeps the request it is resolving and its Lambda context as class
attributes of its BaseRouter (`BaseRouter.current_event = ...`), which the routes read back
(`router.current_event`), and the route being resolved in the resolver's `context` dict, which
it empties after each request. The local API front runs the API function on a thread per
request, so two requests at once would read each other's API key, or find the route gone. The
stack gives those attributes one value per thread instead: what an invocation sets is what it
reads, as in an environment of its own. The handler's code stays as it runs on Lambda.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

# BaseRouter's class attributes that hold the invocation being resolved.
INVOCATION_ATTRIBUTES = ("current_event", "lambda_context")
# The resolver's instance attribute that holds it (each request starts it empty).
INVOCATION_CONTEXT = "context"


class PerThread:
    """A data descriptor whose value belongs to the thread that set it."""

    def __init__(self, name: str):
        self.name = name
        self._values = threading.local()

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        try:
            return self._values.value
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: Any, value: Any) -> None:
        self._values.value = value


class PerThreadContext:
    """A data descriptor for an instance's dict attribute whose value belongs to the thread: a
    thread's first read finds it empty, as each request does."""

    def __init__(self) -> None:
        self._values = threading.local()

    def _by_instance(self) -> dict[int, Any]:
        if not hasattr(self._values, "by_instance"):
            self._values.by_instance = {}
        return self._values.by_instance

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return self._by_instance().setdefault(id(instance), {})

    def __set__(self, instance: Any, value: Any) -> None:
        self._by_instance()[id(instance)] = value


class PerThreadInvocations:
    """Install on BaseRouter with `start()`, undo with `stop()` (the stack's list of patches).

    Reads and writes through an instance find the descriptor in the class (before the
    instance's own `context`); `BaseRouter.x = ...` on the class itself goes through its
    metaclass, so a subclass of that metaclass carries the same descriptors."""

    def __init__(self, cls: type = BaseRouter, names: tuple[str, ...] = INVOCATION_ATTRIBUTES):
        self.cls, self.names = cls, names
        self._metaclass = type(cls)
        self._before: dict[str, Any] = {}
        self._installed = False

    def start(self) -> PerThreadInvocations:
        if isinstance(self.cls.__dict__.get(self.names[0]), PerThread):
            return self  # another stack in this process installed them; it undoes them
        descriptors = {name: PerThread(name) for name in self.names}
        for name, descriptor in descriptors.items():
            if name in self.cls.__dict__:
                self._before[name] = self.cls.__dict__[name]
            setattr(self.cls, name, descriptor)
        setattr(self.cls, INVOCATION_CONTEXT, PerThreadContext())
        self.cls.__class__ = type(f"PerThread{self._metaclass.__name__}", (self._metaclass,), descriptors)
        self._installed = True
        return self

    def stop(self) -> None:
        if not self._installed:
            return
        self._installed = False
        self.cls.__class__ = self._metaclass
        delattr(self.cls, INVOCATION_CONTEXT)
        for name in self.names:
            if name in self._before:
                setattr(self.cls, name, self._before[name])
            else:
                delattr(self.cls, name)
