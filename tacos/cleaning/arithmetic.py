"""A wrong answer to a simple arithmetic question, found by computing it (tacos.cleaning).

The question must be arithmetic and nothing else: the instruction (or its input) ends with one expression of numbers,
+ - * / ^ x × ÷ and parentheses ("What is 8 + 2 x 3?", "Evaluate the following expression" + "(7-4)× 2"), next to
a word that asks for its value, with no variable, no "=" and no unit conversion in the row. The expression is
evaluated from its syntax tree (never eval), and the output is wrong when it has numbers and none of them is the value
(as written, rounded or truncated to the digits shown, or as a fraction). An output without numbers is not judged.
"""
from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from fractions import Fraction

from tacos.cleaning.rules import PerRow
from tacos.records import Record

_NUM = r"\d+(?:\.\d+)?"
_OP = r"(?:[-+*/^×÷]|\s[xX]\s)"
_EXPR = re.compile(rf"(?:^|[\s:(\"'])(\(*\s*-?{_NUM}\s*\)*(?:\s*{_OP}\s*\(*\s*-?{_NUM}\s*\)*)+)\s*[.?!\"']*\s*$")
_ASKS = re.compile(r"\b(?:calculate|compute|evaluate|what(?:'s| is| does)|solve|find|multiply|add|subtract|divide|"
                   r"simplify|work out|do the (?:math|calculation)|(?:result|value|answer|sum|product|difference|"
                   r"quotient|total) (?:of|to|for)|calculation|math problem|arithmetic|expression|equation)\b", re.IGNORECASE)
_NOT_PLAIN = re.compile(r"=|\b(?:convert|scientific notation|binary|hex|base \d|modulo|mod|percent|%|degrees?|"
                        r"derivative|integral|root|roots|matrix|vector|variable|round(?:ed)?|approximate(?:ly)?|"
                        r"estimate|ratio|fraction|decimal|sudoku|date|time|scale)\b", re.IGNORECASE)
_WORDS = ((r"\bplus\b", "+"), (r"\bminus\b", "-"), (r"\b(?:times|multiplied by)\b", "*"), (r"\bdivided by\b", "/"))
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}
_OUT_NUM = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")


def evaluate(expr: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None (not arithmetic, division by zero, too large)."""
    text = re.sub(r"\s[xX]\s", " * ", f" {expr} ").replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _value(tree.body)
    except (SyntaxError, ZeroDivisionError, ValueError, OverflowError, _Refused):
        return None


class _Refused(Exception):
    pass


def _value(node) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        a, b = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and (b.denominator != 1 or abs(b) > 64 or abs(a) > 10 ** 6):
            raise _Refused
        return _BIN[type(node.op)](a, b)
    raise _Refused


def question_expression(instruction: str, input: str) -> str | None:
    """The expression a plain arithmetic question asks for, or None when the row is not one."""
    text = f"{instruction}\n{input}"
    if len(text) > 300 or not any(c.isdigit() for c in text) or _NOT_PLAIN.search(text) or \
            not _ASKS.search(instruction):
        return None
    for part in (input, instruction):
        part = part.strip()
        for pattern, op in _WORDS:
            part = re.sub(pattern, op, part, flags=re.IGNORECASE)
        m = _EXPR.search(part)
        expr = m.group(1).strip() if m else ""
        if re.fullmatch(r"\d+-\d+", expr):
            continue  # "from 1-50": a range, not a subtraction
        if expr and re.search(r"[-+*/^×÷]|\s[xX]\s", expr.lstrip("(-")):
            return expr
    return None


def matches(value: Fraction, written: str) -> bool:
    """Whether a number as written in an answer is this value: exactly, or rounded/truncated to its own digits."""
    written = written.replace(",", "").replace(" ", "")
    try:
        if "/" in written:
            a, b = written.split("/")
            return int(b) != 0 and Fraction(int(a), int(b)) == value
        shown = Fraction(written)
    except (ValueError, ZeroDivisionError):
        return False
    decimals = len(written.split(".")[1]) if "." in written else 0
    step = Fraction(1, 10 ** decimals)
    return abs(shown - value) <= step / 2 or (value >= 0 and shown <= value < shown + step)  # rounded or truncated


@dataclass
class WrongArithmetic(PerRow):
    """A simple arithmetic question whose answer's numbers do not include the value (computed exactly)."""

    name: str = "wrong_arithmetic"

    def reason(self, r: Record) -> str | None:
        expr = question_expression(r.instruction, r.input)
        value = evaluate(expr) if expr else None
        if value is None:
            return None
        written = _OUT_NUM.findall(r.output)
        if not written or any(matches(value, w) for w in written):
            return None
        shown = str(value.numerator) if value.denominator == 1 else f"{float(value):.6g}"
        return f"{expr} is {shown}; the output says {', '.join(w.strip() for w in written[:3])}"
