"""The evaluation groups (bench.groups) on hand-built patients, empty groups, and their masks in the
predictions file (bench.results)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import metrics
from bench.data import Patient, Visit, make_samples
from bench.errors import UserError
from bench.groups import dataset_tags, evaluation_groups, visit_groups
from bench.results import (PREDICTIONS_FILE, Predictions, json_safe, metrics_entry, read_predictions,
                           write_predictions)


def _visit(i: int, *dx: str, tags: tuple[str, ...] = ()) -> Visit:
    return Visit(admission_id=i, diagnoses=dx, procedures=(), drugs=("A01",), tags=frozenset(tags))


# training visits per code: a 5, b 4, c 1 (a visit counts once however often it lists a code)
TRAIN = (Patient(1, (_visit(1, "a", "b", "a"), _visit(2, "a", "b"), _visit(3, "a", tags=("avoidance",)))),
         Patient(2, (_visit(4, "a", "b", "c"), _visit(5, "a", "b"))))
# the test visits and what a hand computation says about each: rarest training count, tags
TEST = (Patient(10, (_visit(11, "a"),                                         # 5: common
                     _visit(12, "a", "b", tags=("interaction",)),             # 4: rare
                     _visit(13, "c", "a", tags=("interaction", "escalation")),  # 1: rare
                     _visit(14, "a", "z"))),                                  # 0: unseen
        Patient(20, (_visit(21, "z", "c"),                                    # 0: unseen (c is rare too)
                     _visit(22))))                                            # no codes: neither
TAGS = dataset_tags(TRAIN + TEST)


def test_dataset_tags_are_every_tag_of_any_visit_sorted():
    assert TAGS == ("avoidance", "escalation", "interaction")
    assert dataset_tags(TRAIN[1:]) == ()


def test_masks_equal_a_hand_computation():
    test = make_samples(TEST, "every")
    groups = evaluation_groups(test, TRAIN, TAGS)
    assert list(groups) == ["all", "single_visit", "multi_visit", "rare_code", "unseen_code",
                            "avoidance", "escalation", "interaction"]
    expected = {"all": [1, 1, 1, 1, 1, 1],
                "single_visit": [1, 0, 0, 0, 1, 0],
                "multi_visit": [0, 1, 1, 1, 0, 1],
                "rare_code": [0, 1, 1, 0, 0, 0],
                "unseen_code": [0, 0, 0, 1, 1, 0],
                "avoidance": [0, 0, 0, 0, 0, 0],      # only a training visit has it: an empty group
                "escalation": [0, 0, 1, 0, 0, 0],
                "interaction": [0, 1, 1, 0, 0, 0]}
    for name, mask in expected.items():
        assert groups[name].dtype == bool
        np.testing.assert_array_equal(groups[name], np.array(mask, bool), err_msg=name)


def test_last_protocol_and_untagged_data():
    test = make_samples(TEST, "last")                      # visits 14 and 22
    groups = evaluation_groups(test, TRAIN)
    assert list(groups) == ["all", "single_visit", "multi_visit", "rare_code", "unseen_code"]
    np.testing.assert_array_equal(groups["unseen_code"], [True, False])
    np.testing.assert_array_equal(groups["multi_visit"], [True, True])
    assert not groups["rare_code"].any() and not groups["single_visit"].any()


def test_the_rare_edges_come_from_training_only():
    """A code is rare by its training visits, never its test ones: c is once in training, 50 times in test."""
    test = make_samples([Patient(i, (_visit(i, "c"),)) for i in range(100, 150)], "last")
    groups = evaluation_groups(test, TRAIN)
    assert groups["rare_code"].all() and not groups["unseen_code"].any()
    assert not evaluation_groups(test, TRAIN + (Patient(3, tuple(_visit(j, "c") for j in range(4))),))["rare_code"].any()


def test_a_tag_named_like_a_group_is_refused():
    with pytest.raises(UserError, match="visit tag 'rare_code'"):
        evaluation_groups(make_samples(TEST), TRAIN, ("rare_code",))


def test_visit_groups_from_indices():
    groups = visit_groups(np.array([0, 2, 0, 1]))
    assert {k: v.tolist() for k, v in groups.items()} == {
        "all": [True] * 4, "single_visit": [True, False, True, False], "multi_visit": [False, True, False, True]}


@pytest.mark.parametrize("patients", [None, np.array([1, 1, 2, 3, 3, 3])])
def test_an_empty_group_has_n_0_and_null_metrics(patients):
    rng = np.random.default_rng(0)
    target = rng.random((6, 4)) < 0.5
    scores = rng.random((6, 4))
    groups = {"all": np.ones(6, bool), "avoidance": np.zeros(6, bool)}
    result = metrics.evaluate(target, scores, ddi_adj=np.zeros((4, 4), bool), groups=groups, patient_ids=patients)
    entry = json_safe(metrics_entry(result["avoidance"]))
    assert entry["n"] == 0
    assert all(value == {"mean": None, "std": None, "point": None} for key, value in entry.items() if key != "n")
    assert json.dumps(entry)
    assert metrics_entry(result["all"])["jaccard"]["point"] is not None


def _predictions(groups: dict[str, np.ndarray] | None) -> Predictions:
    target = np.array([[1, 0], [0, 1], [1, 1]], bool)
    return Predictions(target=target, predicted=target, scores=target.astype(np.float32),
                       patient_id=np.array([1, 2, 2]), visit_index=np.array([0, 0, 1]), drugs=("A", "B"),
                       ddi_adj=np.zeros((2, 2), bool), groups=groups)


def test_group_masks_round_trip_through_the_predictions_file(tmp_path):
    groups = {"all": np.ones(3, bool), "rare_code": np.array([False, True, False]), "interaction": np.zeros(3, bool)}
    write_predictions(tmp_path, _predictions(groups))
    stored = read_predictions(tmp_path)
    assert list(stored.groups) == list(groups)
    for name, mask in groups.items():
        np.testing.assert_array_equal(stored.groups[name], mask)
        assert stored.groups[name].dtype == bool
    write_predictions(tmp_path, _predictions(None))          # as written before the masks were stored
    assert read_predictions(tmp_path).groups is None


def test_bad_group_masks_are_refused(tmp_path):
    with pytest.raises(ValueError, match="groups has shape"):
        write_predictions(tmp_path, _predictions({"all": np.ones(4, bool)}))
    from safetensors.numpy import save_file

    arrays = {"target": np.ones((3, 2), np.uint8), "predicted": np.ones((3, 2), np.uint8),
              "patient_id": np.arange(3), "visit_index": np.zeros(3, np.int64), "groups": np.ones((2, 3), np.uint8)}
    save_file(arrays, str(tmp_path / PREDICTIONS_FILE), metadata={"drugs": '["A", "B"]', "groups": '["all"]'})
    with pytest.raises(UserError, match="cannot read the run's predictions .*distinct groups"):
        read_predictions(tmp_path)
