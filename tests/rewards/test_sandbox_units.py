"""Pure pieces of the sandbox: value conversion, result validation, framing, the seccomp program."""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal
from fractions import Fraction

import pytest
import sympy

from reft_lightning.sandbox import confine as sandbox_confine
from reft_lightning.sandbox.child import execute, to_result
from reft_lightning.sandbox.protocol import (
    MAX_STRING_CHARS,
    ExecutionResult,
    FrameReader,
    decode_result,
    encode_frame,
    encode_result,
)


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (7, 7.0),
        (True, 1.0),
        (2.5, 2.5),
        (Fraction(1, 3), 1 / 3),
        (Decimal("0.1"), 0.1),
        (sympy.Rational(3, 4), 0.75),
    ],
)
def test_numbers_become_plain_floats(returned: object, expected: float) -> None:
    result = to_result(returned)
    assert type(result.value) is float and result.error is None
    assert math.isclose(result.value, expected, rel_tol=0, abs_tol=1e-15)


@pytest.mark.parametrize(
    "returned", [math.nan, math.inf, 10**400, 1j, None, [1], sympy.Symbol("x"), object()]
)
def test_non_real_or_non_finite_values_are_errors(returned: object) -> None:
    result = to_result(returned)
    assert result.value is None and result.error


def test_strings_are_copied_to_plain_str_and_bounded() -> None:
    class Sneaky(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    result = to_result(Sneaky("b"))
    assert type(result.value) is str and result.value == "b"
    assert to_result("x" * (MAX_STRING_CHARS + 1)).value is None


def test_objects_with_tricky_dunders_never_cross_back() -> None:
    class Liar:
        def __eq__(self, other: object) -> bool:
            return True

        def __float__(self) -> float:
            return 7.0

    result = to_result(Liar())
    assert type(result.value) is float and result.value == 7.0


def test_execute_reports_missing_solution_and_exceptions() -> None:
    assert execute("x = 1").error == "no solution() function"
    assert execute("def solution():\n    raise SystemExit(3)").error == "raised SystemExit"
    assert execute("def solution(:").error == "raised SyntaxError"
    assert execute("def solution():\n    return 41 + 1").value == 42.0


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"value": 3}',
        b'{"value": NaN}',
        b'{"value": [1]}',
        b'{"value": 1.0, "error": 5}',
    ],
)
def test_decode_rejects_malformed_payloads(payload: bytes) -> None:
    assert decode_result(payload) == ExecutionResult(None, "malformed result")


def test_decode_rejects_overlong_strings_and_round_trips_good_results() -> None:
    too_long = json.dumps({"value": "x" * (MAX_STRING_CHARS + 1), "error": None}).encode()
    assert decode_result(too_long).value is None
    for result in (ExecutionResult(1.5), ExecutionResult("a"), ExecutionResult(None, "timeout")):
        assert decode_result(encode_result(result)[4:]) == result


def test_frame_reader_reassembles_split_frames_and_rejects_oversized() -> None:
    stream = encode_frame({"a": 1}) + encode_frame({"b": "\ud800"})
    reader = FrameReader(max_bytes=100)
    frames = [frame for i in range(len(stream)) for frame in reader.feed(stream[i : i + 1])]
    assert [json.loads(f) for f in frames] == [{"a": 1}, {"b": "\ud800"}]
    with pytest.raises(ValueError):
        FrameReader(max_bytes=10).feed(struct.pack(">I", 11))


def test_seccomp_program_is_well_formed_and_mentions_every_denied_syscall() -> None:
    for program in (False, True):
        bpf = sandbox_confine.build_filter(program=program, own_pid=1234)
        assert len(bpf) % 8 == 0 and len(bpf) // 8 < 4096
        constants = {struct.unpack_from("HBBI", bpf, i)[3] for i in range(0, len(bpf), 8)}
        denied = dict(sandbox_confine.X86_64_ALWAYS_DENIED)
        if program:
            denied.update(sandbox_confine.X86_64_PROGRAM_DENIED)
            assert 1234 in constants
        assert set(denied.values()) <= constants
