import hashlib

import pytest

from tacos.method.contamination import contamination_report, ngrams, overlap_with_reference

QUESTION = ("Write a short poem about the ocean at night, using at least three vivid metaphors and ending "
            "with a question to the reader.")


def test_ngrams_are_stable_hashed_lowercase_word_grams():
    grams = ngrams("The cat sat. the CAT sat", 3)
    expected = {int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big")
                for g in ("the cat sat", "cat sat the", "sat the cat")}
    assert grams == expected  # "the cat sat" appears twice but counts once
    assert ngrams("Hello, world!", 8) == ngrams("hello world", 2)  # shorter than n: the whole token tuple
    assert ngrams("  ,;  ", 3) == set()
    with pytest.raises(ValueError):
        ngrams("x", 0)


def test_planted_overlap_is_found_and_random_text_is_not():
    train = {
        "clean": "Explain how photosynthesis converts sunlight into chemical energy in plants.",
        "leak": "Please help: " + QUESTION.upper() + " Thanks!",
        "half": "write a short poem about the ocean at night, using rhyme.",
    }
    tests = {"vicuna": {"q1": QUESTION, "q2": "What is the capital of France?"}, "koala": {"k1": "Tell a joke."}}
    report = contamination_report(train, tests, n=8, threshold=0.5)
    assert report["n"] == 8 and report["threshold"] == 0.5
    vicuna = report["per_test_set"]["vicuna"]
    assert vicuna["n_questions"] == 2 and vicuna["n_flagged"] == 1
    assert vicuna["flagged"] == [("leak", "q1", 1.0)]
    assert report["per_test_set"]["koala"] == {"n_questions": 1, "n_flagged": 0, "flagged": []}
    assert report["n_train_flagged"] == 1
    # a low threshold also catches the partial copy, ranked after the full one
    low = contamination_report(train, tests, n=8, threshold=0.1)["per_test_set"]["vicuna"]["flagged"]
    assert [h[0] for h in low] == ["leak", "half"] and 0.1 <= low[1][2] < 0.5


def test_short_questions_match_as_a_whole():
    tests = {"t": {"q": "Tell a joke.", "empty": "?!"}}
    report = contamination_report({"a": "Could you tell a joke please", "b": "a joke tell"}, tests, n=8)
    assert report["per_test_set"]["t"]["flagged"] == [("a", "q", 1.0)]
    assert report["per_test_set"]["t"]["n_questions"] == 2


def test_contamination_report_is_deterministic_and_validates():
    train = {f"t{i}": f"row {i} {QUESTION if i % 3 == 0 else 'nothing here'}" for i in range(10)}
    tests = {"s": {"q": QUESTION}}
    assert contamination_report(train, tests) == contamination_report(dict(train), tests)
    with pytest.raises(ValueError, match="threshold"):
        contamination_report(train, tests, threshold=0)


def test_exact_overlap_with_reference():
    result = overlap_with_reference(["Hello  World", "new text", "HELLO world\n"], ["hello world", "other"])
    assert result == {"n_selected": 3, "n_reference": 2, "n_overlap": 2, "fraction": 2 / 3}
    assert overlap_with_reference([], ["x"])["fraction"] == 0.0


def test_contamination_check_is_the_report_section():
    from tacos.method.contamination import ContaminationCheck

    check = ContaminationCheck(contamination_ngram=4, contamination_threshold=0.5)
    check.validate()
    rep = check.run({"r1": QUESTION}, {"vicuna": {"q": QUESTION}})
    assert (rep["n"], rep["threshold"], rep["n_train_flagged"]) == (4, 0.5, 1)
    for kwargs, key in [({"contamination_ngram": 0}, "report.contamination_ngram"),
                        ({"contamination_threshold": 0.0}, "report.contamination_threshold"),
                        ({"contamination_threshold": "half"}, "report.contamination_threshold")]:
        with pytest.raises(ValueError, match=rf"^{key} must"):
            ContaminationCheck(**kwargs).validate()
