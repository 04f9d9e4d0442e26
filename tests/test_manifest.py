"""check_manifest: an index that the loaded model cannot query correctly is refused, each reason in one line
that says what to run (before, only the fingerprint branch was tested)."""

from __future__ import annotations

import pytest

from jobskills.errors import IndexMismatchError
from jobskills.esco import ESCO_VERSION
from jobskills.scoring import SCORER_VERSION
from jobskills.taxonomy import DEFAULT_TAXONOMY
from jobskills.schema import check_manifest
from tests.conftest import EncoderMeta


def _manifest(**changes: object) -> dict:
    base = {"kind": "skills", "model_name": "jobskills-minilm", "model_fingerprint": "fp-model", "model_path": "/m",
            "dim": 384, "scorer_version": SCORER_VERSION, "taxonomy": DEFAULT_TAXONOMY, "esco_version": ESCO_VERSION}
    return {**base, **changes}


def test_an_index_built_for_this_model_passes():
    check_manifest(_manifest(), EncoderMeta())
    check_manifest(_manifest(), EncoderMeta(), DEFAULT_TAXONOMY)
    check_manifest(_manifest(taxonomy="esco"), EncoderMeta(), DEFAULT_TAXONOMY)  # 0.1 manifests said "esco"
    # a custom taxonomy carries no ESCO version; a titles index belongs to no skill taxonomy
    check_manifest(_manifest(taxonomy="it-skills", esco_version=None), EncoderMeta(), "it-skills")
    check_manifest(_manifest(kind="titles"), EncoderMeta(), "it-skills")


@pytest.mark.parametrize(
    "changes, taxonomy, message",
    [
        ({"model_fingerprint": "fp-other"}, None, "built with model jobskills-minilm (fingerprint fp-other"),
        ({"dim": 768}, None, "the skills index has 768-d vectors but the model gives 384-d; run `jobskills index`"),
        ({"dim": None}, None, "the skills index has None-d vectors but the model gives 384-d"),  # was a TypeError
        ({"scorer_version": "contextmatch-0"}, None,
         f"the skills index was built for scorer contextmatch-0, this jobskills has {SCORER_VERSION}; run `jobskills index`"),
        ({"scorer_version": None}, None, "built for scorer None"),
        ({"esco_version": "v1.0.9"}, None, f"the skills index holds ESCO v1.0.9, this jobskills ships {ESCO_VERSION}; run `jobskills index`"),
        ({"esco_version": "v1.0.9", "taxonomy": "esco"}, DEFAULT_TAXONOMY, "holds ESCO v1.0.9"),
        ({"taxonomy": "it-skills", "esco_version": None}, DEFAULT_TAXONOMY,
         "the skills index holds taxonomy 'it-skills', not 'esco-1.1.0'; run `jobskills index`"),
        ({}, "it-skills", "the skills index holds taxonomy 'esco-1.1.0', not 'it-skills'; run `jobskills index --taxonomy it-skills`"),
    ],
)
def test_each_mismatch_is_refused_in_one_line(changes, taxonomy, message):
    with pytest.raises(IndexMismatchError) as caught:
        check_manifest(_manifest(**changes), EncoderMeta(), taxonomy)
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_a_model_of_another_width_is_refused_even_with_the_same_fingerprint():
    with pytest.raises(IndexMismatchError, match="384-d vectors but the model gives 32-d"):
        check_manifest(_manifest(), EncoderMeta(dim=32))
