"""The agreement statistics against published worked examples."""

import pytest

from curation import agreement


def test_krippendorff_alpha_matches_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example: alpha = 0.743.
    units = [[1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4], [4, 4, 4, 4],
             [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3]]
    assert agreement.krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=0.001)


def test_alpha_is_undefined_without_variation_and_one_for_perfect_agreement():
    assert agreement.krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]) is None
    assert agreement.krippendorff_alpha_nominal([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert agreement.krippendorff_alpha_nominal([["a"]]) is None


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    units = [[category for category, n in enumerate(row) for _ in range(n)] for row in table]
    assert agreement.fleiss_kappa(units) == pytest.approx(0.210, abs=0.001)


def test_cohen_kappa_matches_the_textbook_example():
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert agreement.cohen_kappa(pairs) == pytest.approx(0.4)
    assert agreement.cohen_kappa([]) is None


def test_kendall_tau_over_common_items():
    assert agreement.kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1
    assert agreement.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1
    assert agreement.kendall_tau(["a", "b", "c", "d"], ["a", "b", "d", "c"]) == pytest.approx(4 / 6)
    assert agreement.kendall_tau([1, 2], [3, 1]) is None  # one common item: undefined


def test_normalized_edit_distance_is_word_level_and_bounded():
    assert agreement.normalized_edit_distance("a b c", "a b c") == 0
    assert agreement.normalized_edit_distance("a b c", "a x c") == pytest.approx(1 / 3)
    assert agreement.normalized_edit_distance("a b", "c d e f") == 1
    assert agreement.normalized_edit_distance("", "") == 0
    assert agreement.mean([None, 1.0, 0.0]) == 0.5 and agreement.mean([None]) is None
