"""Pool loading (Alpaca / Evol-Instruct / ShareGPT / HF), the bundled sample pool and the evaluation sets."""
from tacos.data.loaders import (
    FORMATS,
    DataError,
    PoolSource,
    data_dir,
    load_hf_records,
    load_records,
    sample_pool_path,
    unwrap_alpaca_one_line,
    wrap_alpaca_one_line,
)
from tacos.data.test_sets import (
    EXPECTED_SIZES,
    MT_BENCH,
    TEST_SETS,
    alpaca_prompt,
    load_mt_bench,
    load_test_set,
    mt_bench_judge_prompts,
    mt_bench_reference_answers,
)

__all__ = [
    "FORMATS", "DataError", "PoolSource", "data_dir", "load_hf_records", "load_records", "sample_pool_path",
    "unwrap_alpaca_one_line", "wrap_alpaca_one_line", "EXPECTED_SIZES", "MT_BENCH", "TEST_SETS", "alpaca_prompt",
    "load_mt_bench", "load_test_set", "mt_bench_judge_prompts", "mt_bench_reference_answers",
]
