"""The encoder under threads: a server counts and cuts a request's tokens in its handler thread while its batch
worker encodes another batch. A fast tokenizer resets shared padding / truncation state on every call, so
unguarded calls with different settings interleave into ragged, unpadded batches ("Unable to create tensor");
this reproduced it before the encoder held one lock per tokenizer around every call.
"""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.integration

TEXTS = ["short one", "a somewhat longer sentence about Python and SQL databases", "x y z",
         "We need a registered nurse for night shifts on the surgical ward"]


def test_counting_and_encoding_from_several_threads(encoder):
    expected = encoder.encode(TEXTS, with_offsets=True)
    counts = encoder.count_tokens(TEXTS)
    errors: list[str] = []

    def counting() -> None:
        for _ in range(1500):
            try:
                assert encoder.count_tokens(TEXTS * 3) == counts * 3
                assert [len(o) for o in encoder.token_offsets(TEXTS)] == [c - 2 for c in counts]
            except Exception as exc:  # noqa: BLE001 - any failure in a thread is the finding
                errors.append(repr(exc))
                return

    def encoding() -> None:
        for _ in range(150):
            try:
                got = encoder.encode(TEXTS, with_offsets=True)
                assert got.offsets == expected.offsets and got.mask.sum(1).tolist() == expected.mask.sum(1).tolist()
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=counting) for _ in range(3)] + [threading.Thread(target=encoding) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
