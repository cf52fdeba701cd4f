from tacos.data.splits import source_split, suite_half


def test_split_follows_the_source_row_not_the_suite():
    assert source_split("Name a fruit.", "") == source_split("  name a   FRUIT. ", "")
    halves = [suite_half(f"instruction {k}") for k in range(2000)]
    assert 0.46 < halves.count("test") / 2000 < 0.54
    parts = [source_split(f"instruction {k}") for k in range(2000)]
    assert 0.21 < parts.count("train") / 2000 < 0.29
    # train rows are on the dev side: nothing trained on is ever in a test half
    assert all(suite_half(f"instruction {k}") == "dev" for k, p in enumerate(parts) if p == "train")
