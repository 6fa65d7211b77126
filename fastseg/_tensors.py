"""PyTorch CPU tensors in, tensors out, through zero-copy numpy views.

:func:`accepts_tensors` decorates a public function: tensor arguments become numpy views
of the same memory (``Tensor.numpy()``), and arrays in the result become tensors
sharing the result's memory (``torch.from_numpy``). torch is never imported here: a
tensor can only exist once its program has imported torch, so ``sys.modules`` tells
whether an argument can be one, and calls without tensors pay one dictionary lookup.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["accepts_tensors", "is_tensor", "to_numpy"]


def is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor (of any subclass, e.g. MONAI's MetaTensor)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def to_numpy(tensor: Any) -> np.ndarray:
    """A numpy view of a CPU tensor's memory (no copy); TypeError for other devices."""
    if tensor.device.type != "cpu":
        raise TypeError(
            f"fastseg works on CPU tensors, got a tensor on {tensor.device}; "
            "move it with tensor.cpu() first"
        )
    array: np.ndarray = tensor.detach().numpy()
    return array


def _to_torch(value: Any, inputs: dict[int, Any], torch: Any) -> Any:
    """Arrays in ``value`` (itself, in tuples, yielded by a generator) as tensors; an
    array that is the view of an input tensor (in-place results) is that tensor."""
    if isinstance(value, np.ndarray):
        original = inputs.get(id(value))
        if original is not None:
            return original
        if not value.flags.writeable:
            value = value.copy(order="K")
        return torch.from_numpy(value)
    if isinstance(value, tuple):
        items = [_to_torch(item, inputs, torch) for item in value]
        named: Any = value  # a NamedTuple (Components) keeps its type
        return named._make(items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, types.GeneratorType):
        return _converted(value, inputs, torch)
    return value


def _converted(items: Iterator[Any], inputs: dict[int, Any], torch: Any) -> Iterator[Any]:
    for item in items:
        yield _to_torch(item, inputs, torch)


def accepts_tensors(func: F) -> F:
    """Let ``func`` take torch CPU tensors wherever it takes numpy arrays, and return
    tensors where it returns arrays when any argument was a tensor."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        torch = sys.modules.get("torch")
        if torch is None:
            return func(*args, **kwargs)
        tensor = torch.Tensor
        if not any(isinstance(a, tensor) for a in args) and not any(
            isinstance(v, tensor) for v in kwargs.values()
        ):
            return func(*args, **kwargs)
        inputs: dict[int, Any] = {}
        keep_alive: list[np.ndarray] = []

        def view(value: Any) -> Any:
            if not isinstance(value, tensor):
                return value
            array = to_numpy(value)
            inputs[id(array)] = value
            keep_alive.append(array)  # ids stay unique while the result is converted
            return array

        result = func(*[view(a) for a in args], **{k: view(v) for k, v in kwargs.items()})
        return _to_torch(result, inputs, torch)

    return wrapper  # type: ignore[return-value]
