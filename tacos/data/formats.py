"""Text formats, each defined once: the one-line Alpaca wrapper of the released sets, the human turn a model is
trained with, the multi-line Alpaca inference prompt, and the instruction text an LLM judge or tagger sees."""
from __future__ import annotations

from tacos.records import Record

# The one-line wrapper of the released TACOS/long-is-more sets (method_spec.md §9): single spaces, no newlines,
# no trailing "### Response:".
ALPACA_ONE_LINE_PREFIX = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request. ### Instruction: "
)
ALPACA_ONE_LINE_PREFIX_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. ### Instruction: "
)
ALPACA_ONE_LINE_INPUT_SEP = " ### Input: "
PROMPT_WRAPPERS = ("alpaca_one_line", "none")


def wrap_alpaca_one_line(instruction: str, input: str = "") -> str:
    """The human turn of the released sets (§9) for one Alpaca row."""
    if input:
        return ALPACA_ONE_LINE_PREFIX_INPUT + instruction + ALPACA_ONE_LINE_INPUT_SEP + input
    return ALPACA_ONE_LINE_PREFIX + instruction


def unwrap_alpaca_one_line(text: str) -> tuple[str, str] | None:
    """(instruction, input) from a wrapped human turn, or None when `text` is not wrapped.

    With the input variant the first " ### Input: " separates instruction from input; a text that
    has the input prefix but no separator is not split (None), so nothing is guessed.
    """
    if text.startswith(ALPACA_ONE_LINE_PREFIX_INPUT):
        instruction, sep, input = text[len(ALPACA_ONE_LINE_PREFIX_INPUT):].partition(ALPACA_ONE_LINE_INPUT_SEP)
        return (instruction, input) if sep else None
    if text.startswith(ALPACA_ONE_LINE_PREFIX):
        return text[len(ALPACA_ONE_LINE_PREFIX):], ""
    return None


def human_turn(instruction: str, input: str, wrapper: str) -> str:
    """The human turn a model is trained (and then prompted) with: export.prompt_wrapper / infer.prompt_wrapper."""
    if wrapper == "alpaca_one_line":
        return wrap_alpaca_one_line(instruction, input)
    if wrapper == "none":
        return f"{instruction}\n{input}" if input else instruction
    raise ValueError(f"prompt_wrapper must be one of {PROMPT_WRAPPERS}, not {wrapper!r}")


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The inference prompt of the five test sets (method_spec.md §2.9) with "\\n" line ends, not "\\r\\n"."""
    if input:
        return ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n"
                f"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes "
            f"the request.\n\n### Instruction:\n{instruction}\n\n### Response:")


def instruction_text(record: Record, include_input: bool = True) -> str:
    """What a tagger or a judge reads as the instruction: the instruction, then its input on the next line."""
    return f"{record.instruction}\n{record.input}" if include_input and record.input else record.instruction
