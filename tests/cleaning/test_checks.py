"""Each cleaning check on defects written for it (they must be removed) and on good rows that look like them (they
must survive): a link mentioned but not needed, an instruction block asked for, a story in the past tense, a long
answer that ends with a full stop."""
from __future__ import annotations

import pytest

from tacos.cleaning import Cleaner
from tacos.cleaning.arithmetic import WrongArithmetic, evaluate
from tacos.cleaning.rules import ActionClaim, CutShort, MergedTasks, PlaceholderOutput, UnseenMaterial
from tacos.records import Record

LONG = " ".join(["The committee reviewed every proposal in detail and weighed its costs against its benefits"] * 40)

DEFECTS = [  # (check, instruction, input, output)
    (PlaceholderOutput, "Design a logo for a bakery.", "", "<nooutput>"),
    (PlaceholderOutput, "Compose a short melody.", "", "[MUSICAL PIECE]"),
    (PlaceholderOutput, "Name three uses of copper.", "", "N/A"),
    (PlaceholderOutput, "Write a haiku about rain.", "", "Output: [Insert haiku here]"),
    (PlaceholderOutput, "Create a bar chart of the data.", "A: 3, B: 5", "   "),
    (PlaceholderOutput, "Draw a cat.", "", "No output: a GPT model cannot draw pictures."),
    (UnseenMaterial, "Summarize the article.", "https://www.example-news.com/2021/05/story.html",
     "The article explains how the city rebuilt its harbour after the storm."),
    (UnseenMaterial, "Describe what is happening in this photo.", "<image>",
     "A man is walking his dog along a sunny beach."),
    (UnseenMaterial, "Classify the shape in the picture.", "[Image attached]", "It is a hexagon."),
    (UnseenMaterial, "Transcribe the attached audio file.", "", "Hello everyone, welcome to the meeting."),
    (UnseenMaterial, "Given the link, list the main points of the video.", "Link: https://youtu.be/abc123",
     "1. Sleep matters. 2. Exercise daily."),
    (MergedTasks, "Name a primary colour.", "", "Red.\n\n2. Instruction: Name a fruit.\n2. Output: Apple."),
    (MergedTasks, "Give a synonym for happy.", "", "Joyful\n### Instruction:\nTranslate 'cat' to French."),
    (ActionClaim, "Send an email to my boss saying I am sick.", "", "I have sent the email to your boss."),
    (ActionClaim, "Remind me to call mum at 6pm.", "", "Done! I've set a reminder for 6pm."),
    (ActionClaim, "Book a table for two at Luigi's tonight.", "", "I booked a table for two at 8pm."),
    (CutShort, "Explain how committees work.", "", LONG + " and then the chair of the"),
    (WrongArithmetic, "What is 8 + 2 x 3?", "", "The answer is 30."),
    (WrongArithmetic, "Evaluate the following expression.", "(7-4) × 2", "5"),
    (WrongArithmetic, "Calculate 144 divided by 12.", "", "11"),
]

GOOD = [  # rows that look like a defect of `check` and are fine
    (PlaceholderOutput, "Sort the list.", "[3, 1, 2]", "[1, 2, 3]"),
    (PlaceholderOutput, "Write a letter of resignation.", "",
     "Dear [Manager],\n\nI am writing to resign from my position as [Title]. Thank you for the years of support."),
    (PlaceholderOutput, "Translate 'dance all night' into emojis.", "", "💃🌃🕺"),
    (PlaceholderOutput, "Create an empty HTML page.", "", "<html></html>"),
    (PlaceholderOutput, "Is 7 prime?", "", "Yes"),
    (UnseenMaterial, "Write a regex that matches URLs like https://example.com/path.", "",
     r"https?://[\w.-]+(?:/\S*)?"),
    (UnseenMaterial, "Extract the domain name from the URL.", "https://www.example.com/a/b", "example.com"),
    (UnseenMaterial, "Summarize the article at the link.", "https://www.example-news.com/story",
     "I'm sorry, I cannot open links or browse the web; please paste the article's text."),
    (UnseenMaterial, "Classify the following painting into an art movement.", "Picasso's Les Demoiselles d'Avignon",
     "Cubism."),
    (UnseenMaterial, "Format the date according to [ISO 8601](https://en.wikipedia.org/wiki/ISO_8601).",
     "March 5, 2020", "2020-03-05"),
    (UnseenMaterial, "Edit the sentence: \"My painting is bad.\"", "", "My painting needs work."),
    (MergedTasks, "Write an instruction and its output for a sentiment task.", "",
     "Instruction: Classify the sentiment of the review.\nOutput: Positive"),
    (MergedTasks, "Write a function that doubles a number, with an example.", "",
     "def double(x):\n    return 2 * x\n\nInput: 3\nOutput: 6"),
    (ActionClaim, "Write a short story about a trip to Paris.", "",
     "I booked a cheap flight and spent three days walking along the Seine."),
    (ActionClaim, "Write an email to your landlord asking to fix the heating.", "",
     "Dear Mr. Smith,\n\nThe heating has stopped working since Monday; could you send someone to fix it?"),
    (ActionClaim, "Explain how to set a reminder on an iPhone.", "",
     "Open the Reminders app, tap New Reminder, type it and set the time."),
    (CutShort, "Explain how committees work.", "", LONG + "."),
    (CutShort, "Name three fruits.", "", "Apple, banana, cherry"),
    (WrongArithmetic, "What is 8 + 2 x 3?", "", "8 + 2 x 3 = 8 + 6 = 14."),
    (WrongArithmetic, "Find the approximate value of 9/20.", "", "0.45"),
    (WrongArithmetic, "Compute 10 / 3.", "", "About 3.33."),
    (WrongArithmetic, "Add the fractions 3/4 + 2/3.", "", "The sum is 17/12."),
    (WrongArithmetic, "Write 3-5 sentences about the sea.", "", "The sea is vast. It is deep. It is blue."),
    (WrongArithmetic, "Find the sum of all odd numbers from 1-50.", "", "625"),
    (WrongArithmetic, "Generate a product review.", "Rating: 4.5/5", "Great sound; I rate it 4.5/5."),
]


def rec(instruction: str, input: str, output: str) -> Record:
    return Record.make(0, instruction, input, output)


@pytest.mark.parametrize("check,instruction,input,output", DEFECTS, ids=[f"{c.__name__}-{i}" for i, (c, *_)
                                                                          in enumerate(DEFECTS)])
def test_each_defect_is_found_by_its_check(check, instruction, input, output):
    r = rec(instruction, input, output)
    assert check().check([r]).get(r.id), f"{check.__name__} missed: {instruction!r} / {output[:60]!r}"


@pytest.mark.parametrize("check,instruction,input,output", GOOD, ids=[f"{c.__name__}-{i}" for i, (c, *_)
                                                                      in enumerate(GOOD)])
def test_good_rows_that_look_like_a_defect_survive_every_check(check, instruction, input, output):
    r = rec(instruction, input, output)
    flagged = {c.name: c.check([r]).get(r.id) for c in default_checks()}
    assert not any(flagged.values()), f"good row removed: {flagged}"


def default_checks():
    return [PlaceholderOutput(), UnseenMaterial(), MergedTasks(), ActionClaim(), CutShort(), WrongArithmetic()]


def test_evaluate_is_exact_and_refuses_what_is_not_arithmetic():
    assert evaluate("8 + 2 x 3") == 14 and evaluate("(7-4)× 2") == 6 and evaluate("2^10") == 1024
    assert evaluate("1/0") is None and evaluate("__import__('os')") is None and evaluate("9 ** 99999") is None


def test_cleaner_keeps_order_and_lists_every_reason():
    rows = [Record.make(i, *t[1:]) for i, t in enumerate(DEFECTS[:3] + GOOD[:2])]
    out = Cleaner(default_checks()).clean(rows)
    assert [r.index for r in out.kept] == [3, 4]
    assert [r["index"] for r in out.removed] == [0, 1, 2]
    assert all(r["checks"] and r["output"] for r in out.removed)
    assert out.counts["placeholder_output"] == 3 and out.counts["merged_tasks"] == 0


def test_cleaner_refuses_two_checks_with_one_name():
    with pytest.raises(ValueError, match="share a name"):
        Cleaner([PlaceholderOutput(), PlaceholderOutput()]).validate()
