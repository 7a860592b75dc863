"""Reading V2 tensors (``InferInput``) strictly: every problem is a
:class:`kserve.errors.InvalidInput` naming the input (-> HTTP 400 / gRPC INVALID_ARGUMENT)."""

from __future__ import annotations

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput

INT_RANGES = {f"{'U' if u else ''}INT{bits}": ((0, 2**bits - 1) if u else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
              for bits in (8, 16, 32, 64) for u in (False, True)}
INT_TYPES = tuple(INT_RANGES)


def flat(data) -> list:
    """Nested lists flattened, row-major."""
    out: list = []
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(reversed(x))
        else:
            out.append(x)
    return out


def values(inp: InferInput) -> list:
    """The input's values, flat (JSON data or a binary tensor)."""
    if getattr(inp, "_raw_data", None) is not None:
        try:
            return inp.as_numpy().ravel().tolist()
        except Exception as exc:  # noqa: BLE001 - malformed binary tensor
            raise InvalidInput(f"{inp.name}: cannot decode binary data ({exc})") from exc
    data = inp.data
    if data is None:
        raise InvalidInput(f"{inp.name}: no data")
    if isinstance(data, np.ndarray):
        return data.ravel().tolist()
    if not isinstance(data, (list, tuple)):
        data = [data]
    return flat(data)


def shape_of(inp: InferInput) -> list[int]:
    """The declared shape, checked to be non-negative integers."""
    shape = inp.shape
    try:
        shape = [int(s) for s in shape]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{inp.name}: shape must be a list of integers, got {shape!r}") from exc
    if any(s < 0 for s in shape):
        raise InvalidInput(f"{inp.name}: shape must not hold negative sizes, got {shape}")
    return shape


def ints(inp: InferInput, name: str) -> list[int]:
    """Integer values of an integer-typed input (integral floats accepted, booleans refused)."""
    if inp.datatype not in INT_TYPES:
        raise InvalidInput(f"{name}: datatype must be INT64, got {inp.datatype}")
    low, high = INT_RANGES[inp.datatype]
    out = []
    for v in values(inp):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise InvalidInput(f"{name}: values must be integers, got {v!r}")
        if not low <= int(v) <= high:
            raise InvalidInput(f"{name}: {int(v)} does not fit {inp.datatype} ({low}..{high})")
        out.append(int(v))
    return out


def check_layout(inp: InferInput, name: str, shape: list[int]) -> None:
    """JSON data is either flat (row-major) or nested exactly as the declared shape."""
    data = inp.data
    if getattr(inp, "_raw_data", None) is not None or not isinstance(data, (list, tuple)):
        return
    if not any(isinstance(x, (list, tuple)) for x in data):
        return  # flat: the element count is checked against the shape
    if not _nested_as(data, shape):
        raise InvalidInput(f"{name}: data is nested differently from its shape {shape} "
                           "(give it flat, or nested exactly as the shape)")


def _nested_as(data: object, shape: list[int]) -> bool:
    if not shape:
        return not isinstance(data, (list, tuple))
    if not isinstance(data, (list, tuple)) or len(data) != shape[0]:
        return False
    return all(_nested_as(x, shape[1:]) for x in data)


def check_numel(name: str, vals: list, shape: list[int]) -> None:
    """The number of values matches the declared shape."""
    if int(np.prod(shape)) != len(vals):
        raise InvalidInput(f"{name}: shape {shape} does not match {len(vals)} values")


def ids(inp: InferInput, name: str, shape: list[int]) -> list[int]:
    """Non-negative integer ids laid out as ``shape`` (flat or nested exactly so)."""
    check_layout(inp, name, shape)
    vals = ints(inp, name)
    check_numel(name, vals, shape)
    negative = [v for v in vals if v < 0]
    if negative:
        raise InvalidInput(f"{name}: ids must be >= 0, got {negative[0]}")
    return vals
