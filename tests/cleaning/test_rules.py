

def test_a_completed_action_stated_in_the_passive_is_a_claim():
    from tacos.cleaning.rules import ActionClaim
    from tacos.records import Record

    claim = Record.make(0, "Cancel my 3 pm dentist appointment.", "",
                        "Your request has been processed. The appointment is cancelled.")
    passive = Record.make(1, "Pay my electricity bill from my main account.", "", "The payment is complete. $84.20 "
                          "has been moved to the utility company.")
    story = Record.make(2, "Write a story about a bank transfer.", "", "The transfer is complete, she thought.")
    assert set(ActionClaim().check([claim, passive, story])) == {claim.id, passive.id}
