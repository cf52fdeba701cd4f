

def test_a_completed_action_stated_in_the_passive_is_a_claim():
    from tacos.cleaning.rules import ActionClaim
    from tacos.records import Record

    claim = Record.make(0, "Cancel my 3 pm dentist appointment.", "",
                        "Your request has been processed. The appointment is cancelled.")
    passive = Record.make(1, "Pay my electricity bill from my main account.", "", "The payment is complete. $84.20 "
                          "has been moved to the utility company.")
    story = Record.make(2, "Write a story about a bank transfer.", "", "The transfer is complete, she thought.")
    assert set(ActionClaim().check([claim, passive, story])) == {claim.id, passive.id}


def test_an_embedded_picture_or_a_file_given_by_name_is_unseen_material():
    from tacos.cleaning.rules import UnseenMaterial
    from tacos.records import Record

    embed = Record.make(0, "Is the sky in the photo cloudy?", "![IMG_1](https://example.org/a.png)", "Yes, it is.")
    by_name = Record.make(1, "Summarize the attached report.", "q3_report.pdf (attached)", "The report says sales rose.")
    code = Record.make(2, "Rename this file to follow snake case.", "MyReport.pdf", "my_report.pdf")
    pasted = Record.make(3, "Fix the bug in the attached code.", "for i in range(len(x)+1): print(x[i])",
                         "Use range(len(x)).")
    assert set(UnseenMaterial().check([embed, by_name, code, pasted])) == {embed.id, by_name.id}


def test_a_long_list_that_ends_on_an_empty_item_was_cut():
    from tacos.cleaning.rules import CutShort
    from tacos.records import Record

    body = "\n".join(f"{k}. Item {k} is a holiday observed on a fixed day, with its own customs and food." for k in
                     range(1, 30))
    cut = Record.make(0, "List the national holidays of Japan.", "", body + "\n30.")
    whole = Record.make(1, "List the national holidays of Japan.", "", body)
    assert set(CutShort(min_tokens=100).check([cut, whole])) == {cut.id}
