"""A deterministic stand-in judge/tagger for pipeline tests: answers TACOS prompts like a (dull) LLM would."""
from __future__ import annotations

import hashlib
import json
import re

from stub_server import Scripted, last_user_message

TOPICS = ["Creative Writing", "Coding", "Mathematics", "Science", "History", "Health", "Cooking", "Business"]


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def _between(text: str, start: str, end: str) -> str:
    m = re.search(re.escape(start) + r"\s*(.*?)\s*" + re.escape(end), text, re.S)
    return m.group(1) if m else ""


def tacos_responder(body: dict) -> str:
    user = last_user_message(body)
    if "Proposed answer:" in user:  # the wrong_answer check: a fact checker that knows one fact, one token answered
        answer = user.split("Proposed answer:", 1)[1].split("\n", 1)[0]
        if "unreadable" in answer:  # neither yes nor no among the log-probabilities: the check cannot read it
            return Scripted("maybe", {"maybe": -0.1, "perhaps": -2.5})
        if "Sydney" in answer:
            return Scripted("no", {"no": -0.105, "yes": -2.303})  # P(no) = 0.9
        return Scripted("yes", {"Yes": -0.223, "no": -1.609})  # P(no) = 0.2
    if "[begin]" in user:  # tagging: a topic tag + a task-kind tag, deterministic per instruction
        instr = _between(user, "[begin]", "[end]")
        topic = TOPICS[_h(instr) % len(TOPICS)]
        kind = "Explanation" if instr.lower().startswith(("what", "why", "how", "explain", "describe")) else "Generation"
        return json.dumps({"tags": [{"tag": topic, "explanation": "topic"}, {"tag": kind, "explanation": "task"}]})
    if "[Instruction 1]" in user:  # pairwise: longer response scores higher (a length-biased judge)
        r1 = _between(user, "[Response 1]", "[Instruction 2]")
        r2 = _between(user, "[Response 2]", "Respond with JSON")
        if "Answer with a single digit" in user:
            return "1" if len(r1) >= len(r2) else "2"
        s1, s2 = 2 + min(4, len(r1) // 200), 2 + min(4, len(r2) // 200)
        return json.dumps({"score_1": s1, "score_2": s2})
    if "[Instruction]" in user:  # single score
        r = _between(user, "[Response]", "Respond with JSON") or _between(user, "[Response]", "Please rate")
        return json.dumps({"score": 1 + min(5, len(r) // 150)})
    if "better_response" in user:
        return json.dumps({"better_response": "Improved answer: " + _between(user, "[response]:", "Improve")})
    if "better_instruction" in user:
        return json.dumps({"better_instruction": "Clearer: " + _between(user, "[instruction]:", "[response]")})
    if "[Assistant 1's answer]" in user:  # pairwise judging: the longer answer wins
        a1 = _between(user, "[Assistant 1's answer]", "[End of Assistant 1's answer]")
        a2 = _between(user, "[Assistant 2's answer]", "[End of Assistant 2's answer]")
        return f"{min(10, 3 + len(a1) // 40)} {min(10, 3 + len(a2) // 40)}\nThe longer answer is more helpful."
    if "[[rating]]" in "\n".join(m.get("content", "") for m in body.get("messages", [])):  # MT-Bench grading
        return f"A fair answer.\nRating: [[{1 + _h(user) % 10}]]"
    return "I do not know this prompt."
