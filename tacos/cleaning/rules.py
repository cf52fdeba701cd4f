"""Rule checks for the defects real instruction data has (tacos.cleaning). Each looks at one row at a time and says why
it is defective, or nothing. The patterns were read off Alpaca rows (AlpaGasus's random 9k); each rule is narrowed
by what the row asks, so that a good row that merely mentions a link, an instruction or an action survives (the unit
tests hold both kinds: tests/cleaning/test_rules.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from tacos.records import Record

_I = re.IGNORECASE


class PerRow:
    """check(records) from reason(record): the rows with a reason."""

    name: str

    def reason(self, r: Record) -> str | None:
        raise NotImplementedError

    def check(self, records: Sequence[Record]) -> dict[str, str]:
        out = {}
        for r in records:
            why = self.reason(r)
            if why:
                out[r.id] = why
        return out


def short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 3] + "..."


# -- placeholder outputs -----------------------------------------------------------------------------------------------
_PLACEHOLDER_WORD = re.compile(r"^\s*(?:(?:output|answer|response|result)\s*:\s*)?(?:n/?a|none|null|nil|tbd|todo|"
                               r"no\s*output|nooutput|\.{2,}|-+|\?+)\s*[.!]?\s*$", _I)
_ONE_BRACKET = re.compile(r"^\s*(?:(?:output|answer|response|result)\s*:\s*)?([\[<{])([^\[\]<>{}]{1,160})[\]>}]"
                          r"\s*[.!]?\s*$", _I)
_HTML_TAG = re.compile(r"^/?[a-z][a-z0-9]*(\s+[a-z-]+\s*=|\s*/?$)", _I)
_DECLINES = re.compile(r"^\W*no output\b|\b(?:GPT|language) model (?:cannot|can't|can not|is unable|is not able)|"
                       r"cannot be (?:completed|done|performed|fulfilled|generated) by (?:a |an )?(?:GPT|AI|language)|"
                       r"\b(?:this|the) (?:task|instruction) (?:requires|involves) (?:a |an )?(?:visual|non-text|"
                       r"physical|audio)", _I)
_INSERT = re.compile(r"[\[<{]\s*(?:insert|enter|add|put|include|type)\b[^\]>}]*[\]>}]", _I)
_BRACKETED = re.compile(r"\[[^\]]*\]|<[^>]*>|\{[^}]*\}")
_LABEL_ONLY = re.compile(r"^\s*(?:output|answer|response|result)\s*:?\s*$", _I)
_HAS_CONTENT = re.compile(r"[^\s!-/:-@\[-`{-~]")  # anything but whitespace and ASCII punctuation (emoji count)


@dataclass
class PlaceholderOutput(PerRow):
    """An output that stands in for an answer: empty or punctuation only, a lone placeholder (<nooutput>, N/A,
    "[MUSICAL PIECE]", "Output: <answer>"), "[Insert ...]" with next to nothing around it, or a decline because the
    task needs a picture, sound or action ("No output: a GPT model cannot ..."). A list or tag in brackets is data,
    not a placeholder; "Dear [Name]," in a written letter is a fill-in of a real answer and survives."""

    name: str = "placeholder_output"
    max_words_around_insert: int = 8  # "[Insert ...]" with at most this many other words: nothing else was answered

    def reason(self, r: Record) -> str | None:
        out = r.output.strip()
        if len(out) <= 200:  # a placeholder is short; long outputs skip these patterns (the stage stays instant)
            if not _HAS_CONTENT.search(out):
                return "empty output"
            if _PLACEHOLDER_WORD.match(out) or _LABEL_ONLY.match(out):
                return f"placeholder output {short(out)!r}"
            m = _ONE_BRACKET.match(out)
            if m and self._placeholder_text(m.group(1), m.group(2)):
                return f"placeholder output {short(out)!r}"
        if _DECLINES.search(out[:300]):
            return f"declines the task as impossible for a text model: {short(out)!r}"
        if ("[" in out or "<" in out or "{" in out) and _INSERT.search(out):
            words = re.findall(r"\w+", _BRACKETED.sub(" ", out))
            if len(words) <= self.max_words_around_insert:
                return f"a template to fill in, not an answer: {short(out)!r}"
        return None

    @staticmethod
    def _placeholder_text(bracket: str, inner: str) -> bool:
        inner = inner.strip()
        if _PLACEHOLDER_WORD.match(inner) or re.match(r"(?i)no[\s_-]*(?:output|answer|response)\b", inner):
            return True  # <nooutput>, [N/A], <No output>
        if not re.match(r"[A-Za-z]", inner) or (bracket == "<" and _HTML_TAG.match(inner)):
            return False  # [1, 2, 3], ['fox'], <html>, <br/>: data and markup
        if bracket == "{" and re.search(r"[\"':]", inner):
            return False  # a JSON object
        items = [i for i in inner.split(",") if i.strip()]
        if len(items) >= 2 and all(len(i.split()) <= 3 for i in items):
            return False  # [Apple, Orange, Banana, Pear]: a list
        return True


# -- material the model never saw ------------------------------------------------------------------------------------
_URL = re.compile(r"\bhttps?://\S+|\bwww\.[a-z0-9-]+\.\S+|\b[a-z0-9-]+\.(?:com|org|net|io|gov|edu)/\S*", _I)
_MEDIA = r"(?:photo|photograph|picture|pic|image|img|video|clip|audio|recording|song|painting|artwork|chart|graph|" \
         r"diagram|screenshot|drawing|sketch|figure|file|document|spreadsheet|pdf|attachment|website|web ?page|page|" \
         r"link|url|article|podcast|map|design|shape|logo|poster)"
_MARKER = re.compile(r"^\s*(?:[a-z ]{0,30}:\s*)?(?:!?\[[^\]]*\b(?:image|photo|picture|pic|video|audio|attach\w*|"
                     r"recording|screenshot|graph|chart|drawing|sketch|figure|file)\b[^\]]*\]|<\s*(?:img\b|image|"
                     r"picture|photo|video|audio|attach\w*|[a-z ]*attached)[^>]*>|\(\s*(?:attached|link to|see)[^)]*\)"
                     r"|\[(?:image|picture|photo|video|audio)\s*\d*\](?:\s*\[(?:image|picture|photo|video|audio)\s*\d*"
                     r"\])*|\[(?:PICTURE|IMAGE|PHOTO|VIDEO|AUDIO)\])\s*$", _I)
# An input that only embeds a picture (markdown image, whatever its alt text) or only names a file.
_EMBED = re.compile(r"^\s*(?:[a-z ]{0,30}:\s*)?!\[[^\]]*\]\([^)]*\)\s*$", _I)
_FILE_NAME = re.compile(r"^\s*(?:[a-z ]{0,20}:\s*)?[\w.-]+\.(?:py|js|ts|java|c|cpp|h|rb|go|rs|txt|md|pdf|docx?|csv|tsv|"
                        r"xlsx?|pptx?|png|jpe?g|gif|bmp|svg|mp3|wav|m4a|mp4|mov|avi|zip|json|xml|html?)"
                        r"(?:\s*\((?:attached|attachment|see attached|uploaded)\))?\s*$", _I)
_REFERS = re.compile(rf"\b(?:this|these|the following|following|the given|given|the attached|attached|the linked|"
                     rf"the provided|provided|the above|above|the below|below) {_MEDIA}s?\b|\battached\b|"
                     rf"\bin the (?:link|url)\b|\bthe (?:link|url)\b(?! (?:to|for) )", _I)
_VISUAL = re.compile(r"\b(?:photo|photograph|picture|pic|image|video|clip|audio|recording|painting|artwork|chart|"
                     r"graph|diagram|screenshot|drawing|sketch|figure|attachment|spreadsheet|pdf|podcast|map|poster|"
                     r"logo|shape)s?\b", _I)
_ABOUT_THE_STRING = re.compile(r"\b(?:hyperlinks?|domain|regex|regular expression|http request|api|endpoint|html|"
                               r"markdown|href|citation|cite|bibliograph\w*|email address|anchor text|url shortener)\b|"
                               r"\b(?:extract|generate|create|write|shorten|validate|parse|check|format|encode|decode)"
                               r"\w* (?:the |a |an |all |this |these |each )?(?:urls?|links?|web addresses?)\b", _I)
_CONTENT_TASK = re.compile(r"\b(?:summar|describe|descri|analy[sz]|review|evaluat|classif|identif|watch|listen|read|"
                           r"visit|rewrite|critique|comment|main points|key points|based on|according to|what|which|"
                           r"who|how|tell|explain|rate|guess|caption|name|edit|access|translate|transcribe|list|find|"
                           r"determine|assess|improve|compare|give)\w*", _I)
_NO_INPUT = re.compile(r"^\s*(?:<?\s*(?:no|n/?a|none)[\s_-]*input\s*(?:required|needed|provided)?\s*>?\.?|n/?a|none|)"
                       r"\s*$", _I)
_DISCLAIMS = re.compile(r"\b(?:I|we)(?: am|'m| are|'re)? (?:not able|unable|can ?not|can't|don't have|do not have|"
                        r"have no)\b[^.]{0,60}\b(?:access|see|view|open|watch|listen|browse|display|visit|read|load|"
                        r"look|click)|\bno (?:image|picture|photo|video|file|link|attachment)\b[^.]{0,30}"
                        r"(?:provided|attached|given|included|shared)|\bas an AI\b|\bwithout (?:seeing|access)\b|"
                        r"(?:please|could you) (?:provide|share|describe|paste|upload)", _I)


@dataclass
class UnseenMaterial(PerRow):
    """The row asks about a link, picture, video, audio, file or attachment that is not in the text (a URL as the
    material, "<image>", "[Image of a tree]", "(attached image)", "describe this painting" with no input) and the
    output answers anyway instead of saying it cannot see it. A task about the URL string itself (its domain, a
    regex, an HTTP request), an instruction with a reference link, and an answer that says it cannot open the link
    all survive."""

    name: str = "unseen_material"

    def reason(self, r: Record) -> str | None:
        material = self.unseen(r.instruction, r.input)
        if material is None or _DISCLAIMS.search(r.output):
            return None
        return f"answers about {material} the model never saw: {short(r.output, 50)!r}"

    @staticmethod
    def unseen(instruction: str, input: str) -> str | None:
        """What the row refers to that its text does not contain, or None."""
        inp = input.strip()
        if _MARKER.match(inp):
            return f"an attachment marker ({short(inp, 40)!r})"
        if _MARKER.match(instruction.strip().split("\n")[-1]):
            return "an attachment marker in the instruction"
        if _EMBED.match(inp):
            return f"an embedded image ({short(inp, 40)!r})"
        if _ABOUT_THE_STRING.search(instruction):
            return None
        text = f"{instruction}\n{inp}"
        urls = _URL.findall(text)
        # A link given as the thing to work on: the input is (mostly) the link, or the instruction points at it.
        if urls:
            rest = _URL.sub(" ", inp)
            rest = re.sub(r"(?i)\b(?:article|video|song|website|page|spreadsheet|image|photo|link|url|source)\b|[\W_]",
                          " ", rest)
            mostly_link = inp and len(rest.split()) <= 2 and _URL.search(inp)
            in_markdown_ref = re.search(r"\]\((?:https?://|www\.)", instruction) and not _URL.search(inp)
            if (mostly_link or _REFERS.search(instruction)) and not in_markdown_ref and \
                    _CONTENT_TASK.search(instruction):
                return f"a link ({short(urls[0], 40)})"
        # "Describe this painting" / "the attached photo" with nothing (or no picture) in the input.
        ref = _REFERS.search(instruction)
        if ref and _VISUAL.search(ref.group(0)) and (_NO_INPUT.match(inp) or "attach" in ref.group(0).lower()):
            return f"{ref.group(0).lower()!r} with no such material in the row"
        # "the attached file" with only a file name (or nothing) where its content should be.
        if ref and "attach" in ref.group(0).lower() and (_NO_INPUT.match(inp) or _FILE_NAME.match(inp)):
            return f"{ref.group(0).lower()!r} given by name only ({short(inp, 30)!r})"
        return None


# -- tasks merged into one row ---------------------------------------------------------------------------------------
_BLOCK = re.compile(r"(?im)^[ \t]*(?:#+[ \t]*|\d+[ \t]*[.)][ \t]*)?(?:instruction|###[ \t]*(?:input|response))[ \t]*:"
                    r"|^[ \t]*#{2,}[ \t]*(?:instruction|input|response)\b|^[ \t]*\d+[ \t]*[.)][ \t]*(?:input|output)"
                    r"[ \t]*:|<\|?(?:endoftext|im_start|im_end)\|?>")


@dataclass
class MergedTasks(PerRow):
    """The output answers and then goes on with further instruction/output blocks ("11. Instruction: ...",
    "### Response", "<|endoftext|>"): several tasks run together in one row. A marker at the very start (an answer
    that is an instruction because one was asked for) is not counted."""

    name: str = "merged_tasks"

    def reason(self, r: Record) -> str | None:
        low = r.output.lower()
        if not any(k in low for k in ("instruction", "#", "input", "output", "response", "<|")):
            return None
        for m in _BLOCK.finditer(r.output):
            if r.output[:m.start()].strip():
                return f"a further task block inside the output: {short(r.output[m.start():], 50)!r}"
        return None


# -- actions a text model cannot perform -----------------------------------------------------------------------------
_ACTS = r"send|e-?mail|text|message|book|schedule|remind|order|call|phone|buy|purchase|reserve|pay|transfer|" \
        r"play|turn (?:on|off)|switch (?:on|off)|post|upload|download|install|delete|cancel|print|forward|" \
        r"subscribe|unsubscribe|notify|alert|contact|dial|lock|unlock|access|open the|launch|add (?:this|it|an? \w+) to|" \
        r"add .{0,60}\bto (?:my|the) (?:calendar|schedule|list|cart|playlist|contacts)|arrange|dim|mute|water|" \
        r"feed|start|stop the|make (?:a|an) (?:call|reservation|appointment|booking|payment)"
_ACTION_REQUEST = re.compile(rf"^\s*(?:please[, ]+|can you |could you |now[, ]+)?(?:{_ACTS})\b|\bremind me\b|"
                             r"\bset (?:a|an|up a|up an) (?:reminder|alarm|timer|meeting|appointment)\b|"
                             r"\b(?:for|to) me\b.*\b(?:send|book|order|schedule|call|buy)\b", _I)
_DONE = r"sent|e-?mailed|texted|messaged|booked|scheduled|set|set up|ordered|called|phoned|bought|purchased|" \
        r"reserved|paid|transferred|played|turned (?:on|off)|switched (?:on|off)|posted|uploaded|downloaded|" \
        r"installed|deleted|cancell?ed|printed|forwarded|subscribed|unsubscribed|notified|alerted|contacted|" \
        r"dialed|dialled|locked|unlocked|accessed|opened|launched|placed|edited|added (?:it|this|the \w+) to|" \
        r"moved|submitted|processed|completed|confirmed|renewed|activated|deactivated|shared|saved|updated"
_CLAIM = re.compile(rf"\b(?:I(?:'ve| have)?|I've just|I have just|I just)\s+(?:now\s+|already\s+|"
                    rf"successfully\s+)?(?:{_DONE})\b|\b(?:has|have) (?:now |already |successfully )?been "
                    rf"(?:{_DONE})\b|^\s*(?:done|ok(?:ay)?|sure|all set|success)\b[!.,]|"
                    rf"^\s*(?:reminder|alarm|timer|email|message|order|appointment|meeting|booking) "
                    rf"(?:is |was )?(?:{_DONE})\b|\bis (?:now )?(?:playing|on its way|confirmed|scheduled|booked)\b|"
                    rf"^\s*(?:calling|texting|messaging|dialing|dialling|sending|booking|ordering|playing|now playing)\b|"
                    rf"\b(?:are|is) now (?:on|off|locked|unlocked|playing|muted|dimmed|set)\b|"
                    rf"^\s*(?:\w+ )?(?:tickets?|seats?|table|room|flight|appointment)s? (?:are |is |has been |have been )?"
                    rf"(?:reserved|booked|confirmed|added)\b|"
                    rf"^\s*(?:the |your )?(?:transfer|payment|transaction|purchase|request|task|change|update|booking|"
                    rf"reservation|order|call|message|e-?mail|text) (?:is|was|has been) (?:now )?"
                    rf"(?:complete|completed|done|finished|successful|processed|confirmed)\b",
                    _I | re.M)


@dataclass
class ActionClaim(PerRow):
    """The row asks for an action in the world (send, book, set a reminder, play, order, edit this photo) and the
    output claims to have done it ("I've set a reminder", "The email has been sent", "Done!"). Past tense in a story,
    a letter or a dialogue that the row asked to be written is not a claim: only the start of the output counts, and
    only when the instruction itself asks for the action."""

    name: str = "action_claim"
    head_chars: int = 160  # where in the output a claim counts

    def reason(self, r: Record) -> str | None:
        if not _ACTION_REQUEST.search(r.instruction):
            return None
        m = _CLAIM.search(r.output.strip()[:self.head_chars])
        return f"claims to have acted: {m.group(0).strip()!r}" if m else None


# -- answers cut short -----------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\w+|[^\w\s]")
_ENDS_WELL = re.compile(r"(?:[.!?…:;)\]}\"'”’*`>|~]|\b(?:end|END)|[\U0001F300-\U0001FAFF])$")


_BARE_ITEM = re.compile(r"\n[ \t]*(?:\d+[.)]|[-*•])[ \t]*$")


def approx_tokens(text: str) -> int:
    """Words and punctuation marks: within ~15% of a BPE tokenizer's count on English prose, and free."""
    return len(_TOKEN.findall(text))


@dataclass
class CutShort(PerRow):
    """A long output that ends mid-sentence: cut at a generation cap (512 tokens in many pools), not finished. Short
    outputs without a final stop (labels, list items, code) are common and fine, so only outputs near the cap count;
    an open code fence counts at any length above it too."""

    name: str = "cut_short"
    min_tokens: int = 380  # approx_tokens; a 512-BPE-token cut is ~390-500 of these (code and numbers count fewer)

    def reason(self, r: Record) -> str | None:
        out = r.output.rstrip()
        if len(out) < self.min_tokens:  # a token is at least one character: too short to count (fast path)
            return None
        open_fence = out.count("```") % 2 == 1
        bare_item = _BARE_ITEM.search(out)  # "...\n4." : the next list item was cut before its text
        if not open_fence and not bare_item and _ENDS_WELL.search(out[-8:]):
            return None
        n = approx_tokens(out)
        if n < self.min_tokens:
            return None
        if open_fence:
            return f"{n} tokens and a code block that is never closed"
        if bare_item:
            return f"{n} tokens ending with an empty list item: {short(out[-40:], 40)!r}"
        if not _ENDS_WELL.search(out[-8:]):
            return f"{n} tokens ending mid-sentence: {short(out[-40:], 40)!r}"
        return None
