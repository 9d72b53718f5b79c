from __future__ import annotations

import pytest

from qa.trust.agreement import agreement, same_answer


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Duke William", "William II of Normandy", False),  # F1 0.4: one shared word of 2 and 4
        ("Duke William II", "William II of Normandy", True),
        ("1066", "in 1066", True),
        ("1066", "1072", False),
        ("the North Sea", "North Sea", True),
        ("", "North Sea", False),
    ],
)
def test_short_answers_agree_when_their_words_mostly_overlap(a: str, b: str, same: bool) -> None:
    assert same_answer(a, b) is same


def test_agreement_is_the_share_of_samples_naming_the_answer() -> None:
    assert agreement("1998", ["1998", "in 1998", "2001", "none"]) == 0.5
    assert agreement("1998", ["None", "n/a"]) == 0.0
    assert agreement("1998", []) == 1.0  # nothing sampled: never marked down
