"""`track_time`: observe how long a function, a coroutine or a block takes into a histogram.

No dependency on the rest of `monitoring`, so that `monitoring.metrics` and `monitoring.server` can both
offer it (the user guide imports it from `monitoring.metrics`).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Observer(Protocol):
    """A histogram or summary child (`hist.labels(...)`, or an unlabelled one): `observe(seconds)`."""

    def observe(self, amount: float) -> None: ...


class track_time:  # lower-case: used like a function, `@track_time(h)` and `with track_time(h):`
    """Observe elapsed seconds (perf_counter) into `metric`, also when the body raises.

    Decorates sync and async functions (the await is timed, not the coroutine creation) and works as a
    sync context manager. Each `with` should use its own `track_time(...)` object; decorated functions
    can run concurrently.
    """

    def __init__(self, metric: Observer) -> None:
        self.metric = metric
        self._starts: list[float] = []

    def __enter__(self) -> track_time:
        self._starts.append(time.perf_counter())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.metric.observe(time.perf_counter() - self._starts.pop())

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        metric = self.metric
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    metric.observe(time.perf_counter() - start)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                metric.observe(time.perf_counter() - start)

        return timed
