"""Pool loading (Alpaca / Evol-Instruct / ShareGPT / HF), text formats, the bundled sample pool, the evaluation
sets and labelled judge-evaluation pairs."""
from tacos.data.formats import alpaca_prompt, human_turn, instruction_text, unwrap_alpaca_one_line, wrap_alpaca_one_line
from tacos.data.loaders import FORMATS, DataError, PoolSource, load_hf_records, load_records, sample_pool_path
from tacos.data.benchmark_sets import (EXPECTED_SIZES, MT_BENCH, TEST_SETS, load_mt_bench, load_test_set,
                                  mt_bench_judge_prompts, mt_bench_reference_answers)

__all__ = [
    "FORMATS", "DataError", "PoolSource", "load_hf_records", "load_records", "sample_pool_path",
    "unwrap_alpaca_one_line", "wrap_alpaca_one_line", "human_turn", "instruction_text", "alpaca_prompt",
    "EXPECTED_SIZES", "MT_BENCH", "TEST_SETS", "load_mt_bench", "load_test_set", "mt_bench_judge_prompts",
    "mt_bench_reference_answers",
]
