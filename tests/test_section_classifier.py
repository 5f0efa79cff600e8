"""Section classifier: the committed head, its integrity checks, clear sentences, and test-1 accuracy."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from ambient.errors import ModelIntegrityError
from ambient.nlp.section_classifier import (
    HEAD_DIR,
    SectionClassifier,
    SectionPrediction,
    fit_softmax_regression,
    load_section_map,
    note_section,
    softmax,
)
from ambient.resources import data_dir
from tests.conftest import SHARED_DATA

MTS_TEST1 = SHARED_DATA / "mts-dialog" / "MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv"
TARGET_ACCURACY = 0.80  # issue 5; MEDIQA-Sum 2023's best task-A system was about 0.8


@pytest.fixture(scope="module")
def classifier() -> SectionClassifier:
    return SectionClassifier.load()


def _head_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "head"
    shutil.copytree(data_dir("models") / HEAD_DIR, folder)
    return folder


@pytest.mark.model
def test_clear_sentences_land_in_their_sections(classifier: SectionClassifier) -> None:
    cases = {
        "Doctor: Any allergies to medications?\nPatient: I'm allergic to penicillin.": "ALLERGY",
        "Patient: I'm allergic to penicillin, it gives me a rash.": "ALLERGY",
        "Doctor: Lungs are clear to auscultation bilaterally, heart regular rate and rhythm.": "EXAM",
        "Doctor: Do you smoke or drink?\nPatient: I quit smoking years ago, I drink socially.": "FAM/SOCHX",
        "Doctor: What medications are you taking?\nPatient: Metformin and lisinopril.": "MEDICATIONS",
        "Doctor: Have you had any surgeries?\nPatient: I had my appendix out in 2010.": "PASTSURGICAL",
    }
    predictions = classifier.predict(list(cases))
    assert [p.label for p in predictions] == list(cases.values())


@pytest.mark.model
def test_single_transcript_sentences(classifier: SectionClassifier) -> None:
    """What the drafter passes: one sentence. Allergy talk is unmistakable; a bare exam finding is not.

    EXAM has 23 training dialogues, so "lungs are clear to auscultation" without a speaker or an
    "on exam" cue comes out ASSESSMENT/IMAGING/EXAM at ~0.2-0.4 each: the drafter should weigh this
    classifier with its rule findings and the speaker, not follow it alone (docs/benchmarks.md).
    """
    allergy = classifier.predict(["any allergies to medications?", "I'm allergic to penicillin"])
    assert [p.label for p in allergy] == ["ALLERGY", "ALLERGY"]
    assert min(p.probability for p in allergy) > 0.9
    (exam,) = classifier.predict(["Doctor: On exam, lungs are clear to auscultation."])
    assert exam.label == "EXAM"
    (family,) = classifier.predict(["Patient: My father had a heart attack at sixty."])
    assert family.label == "FAM/SOCHX"


@pytest.mark.model
def test_predictions_are_ranked_distributions(classifier: SectionClassifier) -> None:
    (prediction,) = classifier.predict(["Patient: My mother had breast cancer."], top_k=5)
    assert isinstance(prediction, SectionPrediction)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prediction.label = "EXAM"  # type: ignore[misc]
    assert len(prediction.top) == 5
    assert prediction.top[0] == (prediction.label, prediction.probability)
    probabilities = [p for _, p in prediction.top]
    assert probabilities == sorted(probabilities, reverse=True)
    full = classifier.probabilities(
        ["Patient: My mother had breast cancer.", "Doctor: Follow up in 2 weeks."]
    )
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)
    assert classifier.predict([]) == []


@pytest.mark.model
def test_tampered_head_is_refused(tmp_path: Path, classifier: SectionClassifier) -> None:
    folder = _head_copy(tmp_path)
    assert SectionClassifier.load(folder, encoder=classifier.encoder).labels == classifier.labels
    data = bytearray((folder / "head.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "head.npz").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"head\.npz.*expects"):
        SectionClassifier.load(folder, encoder=classifier.encoder)


@pytest.mark.model
def test_head_trained_on_another_encoder_is_refused(tmp_path: Path, classifier: SectionClassifier) -> None:
    folder = _head_copy(tmp_path)
    manifest = folder / "head.toml"
    manifest.write_text(manifest.read_text().replace(classifier.encoder.ref.sha256, "0" * 64))
    with pytest.raises(ModelIntegrityError, match="trained on embedding model"):
        SectionClassifier.load(folder, encoder=classifier.encoder)
    (folder / "head.toml").unlink()
    with pytest.raises(ModelIntegrityError, match="retrain"):
        SectionClassifier.load(folder, encoder=classifier.encoder)


def test_head_manifest_records_data_hashes_and_metrics() -> None:
    manifest = tomllib.loads((data_dir("models") / HEAD_DIR / "head.toml").read_text())
    assert len(manifest["labels"]) == 20
    for name in ("train", "validation", "test1", "aci_train"):
        assert len(manifest["training_data"][f"{name}_sha256"]) == 64
    assert 0 < manifest["metrics"]["accuracy"] <= 1
    assert set(manifest["metrics"]["per_class"]) <= set(manifest["labels"])
    assert (data_dir("models") / HEAD_DIR / "head.npz").stat().st_size < 400_000


def test_softmax_regression_learns_separable_classes() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)).astype(np.float32) * 3
    targets = rng.integers(0, 3, size=300)
    features = (centres[targets] + rng.normal(size=(300, 8))).astype(np.float32)
    weight, bias = fit_softmax_regression(features, targets, 3, c=1.0)
    accuracy = float((softmax(features @ weight + bias).argmax(axis=1) == targets).mean())
    assert accuracy > 0.95
    weak, _ = fit_softmax_regression(features, targets, 3, c=1e-4)
    assert np.abs(weak).sum() < np.abs(weight).sum() / 10  # C is an inverse penalty, as in scikit-learn


def test_section_map_covers_every_label_and_points_at_template_sections() -> None:
    labels = tomllib.loads((data_dir("models") / HEAD_DIR / "head.toml").read_text())["labels"]
    mapping = load_section_map()
    assert set(mapping) == set(labels)
    template_keys: dict[str, set[str]] = {}
    for path in data_dir("clinical_templates").glob("*.toml"):
        template = tomllib.loads(path.read_text())
        template_keys[template["name"]] = {s["key"] for s in template["sections"]}
    known = set().union(*template_keys.values())
    for entry in mapping.values():
        assert set(entry.sections) <= known, entry
        assert note_section(entry.header, template_keys["soap"]) is not None, entry.header
    soap = template_keys["soap"]
    assert note_section("EXAM", soap) == "objective"
    assert note_section("ALLERGY", soap) == "subjective"
    assert note_section("ASSESSMENT", soap) == "assessment"
    assert note_section("DISPOSITION", soap) == "plan"
    assert note_section("ALLERGY", template_keys["hp"]) == "allergies"
    assert note_section("NOT-A-HEADER", soap) is None


def _test1() -> tuple[list[str], list[str]]:
    if not MTS_TEST1.is_file():
        pytest.skip(f"MTS-Dialog test-1 is not at {MTS_TEST1} (../shared/data beside the repository)")
    with MTS_TEST1.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["dialogue"] for r in rows], [r["section_header"] for r in rows]


@pytest.fixture(scope="module")
def test1_accuracy(classifier: SectionClassifier) -> float:
    dialogues, gold = _test1()
    predicted = [p.label for p in classifier.predict(dialogues)]
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


@pytest.mark.model
def test_committed_head_reproduces_its_test1_accuracy(test1_accuracy: float) -> None:
    recorded = tomllib.loads((data_dir("models") / HEAD_DIR / "head.toml").read_text())["metrics"]["accuracy"]
    assert test1_accuracy == pytest.approx(recorded, abs=0.006)  # one dialogue of 200 is 0.005
    assert test1_accuracy >= 0.72


@pytest.mark.model
@pytest.mark.xfail(strict=True, reason="frozen all-MiniLM-L6-v2 + linear head reaches ~0.75, not 0.80 yet")
def test_test1_accuracy_meets_the_issue_target(test1_accuracy: float) -> None:
    assert test1_accuracy >= TARGET_ACCURACY


def test_training_script_stops_clearly_without_data(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_section_classifier.py"
    result = subprocess.run(
        [sys.executable, str(script), "--data", str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "MTS-Dialog-TrainingSet.csv" in result.stderr and "--data" in result.stderr
    assert not (tmp_path / "out").exists()
