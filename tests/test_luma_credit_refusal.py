"""Luma's official API refuses a create the account cannot pay for with a 400 ("Insufficient
credits", as the simulator's luma dialect answers), not UmamiAI's 402/403: that refusal is the
account's, so the job waits on the hold instead of failing. Other 400s stay the job's own."""

from generations.client import PermanentError
from generations.models import HoldCause
from generations.pipeline import hold


def test_a_400_about_credits_puts_the_account_on_hold():
    exc = PermanentError("Insufficient credits", status_code=400)
    assert hold.account_refusal(exc) is HoldCause.CREDITS


def test_a_400_about_the_request_is_the_jobs_own():
    for message in ("prompt: too long", "keyframes.frame0: unknown generation", ""):
        assert hold.account_refusal(PermanentError(message, status_code=400)) is None
