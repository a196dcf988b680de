"""Plain-English questions with the subject each answer must name, over the demo, BPI 2012 and App in the Air.

Written before the planner was tuned. `expect` lists strings that must all appear
in the answer (case-insensitive); for a question the data cannot answer, `kind`
is "none": the answer must say the data does not say, and name `expect`.
Truths: demo conversion 396 of 1,553 = 25.5%; platform android 24.7%, ios 25.6%,
web 26.0%; plan free 25.9%, pro 25.3%, team 23.4%; v2.3 before 28.7%, after
23.4%; drop-off point billing_page; driver import_data; loop settings. BPI
approved 17.6%, under 5k 3.49%. App in the Air passed 60.2%.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Q:
    ws: str  # demo | bpi | aita
    kind: str  # rate | comparison | change | loss | driver | date | other | none
    question: str
    expect: tuple[str, ...]


QUESTIONS: tuple[Q, ...] = (
    # demo: rate
    Q("demo", "rate", "What is the overall conversion rate?", ("25.5%", "converted")),
    Q("demo", "rate", "What is the conversion rate of mobile users?", ("android", "ios", "mobile")),
    Q("demo", "rate", "What is the conversion rate of android users?", ("android", "24.7%")),
    Q("demo", "rate", "How many users converted?", ("396",)),
    Q("demo", "rate", "What share of pro plan users convert?", ("pro", "25.3%")),
    Q("demo", "rate", "What is the drop-off rate?", ("74.5%",)),
    # demo: comparison
    Q("demo", "comparison", "Which segment converts worse?", ("team", "23.4%")),
    Q("demo", "comparison", "Which platform converts best?", ("web", "26.0%")),
    Q("demo", "comparison", "How do iOS users differ from Android users?", ("ios", "android")),
    Q("demo", "comparison", "Do free users convert better than pro users?", ("free", "pro")),
    # demo: change
    Q("demo", "change", "What got worse after v2.3?", ("import_data", "v2.3")),
    Q("demo", "change", "What changed after the last release?", ("v2.3", "import_data")),
    Q("demo", "change", "Did the conversion rate change after v2.3?", ("28.7%", "23.4%")),
    Q("demo", "change", "What changed since the release?", ("v2.3",)),
    # demo: loss
    Q("demo", "loss", "Where do users drop off?", ("billing_page",)),
    Q("demo", "loss", "Why do users drop off?", ("billing_page",)),
    Q("demo", "loss", "Which step loses the most users?", ("billing_page",)),
    # demo: driver
    Q("demo", "driver", "What matters most for converting?", ("import_data",)),
    Q("demo", "driver", "Which step is most associated with converting?", ("import_data",)),
    Q("demo", "driver", "What drives conversion?", ("import_data",)),
    # demo: dates
    Q("demo", "date", "What was the conversion rate in the week of 2026-01-19?", ("30.1%",)),
    Q("demo", "date", "What was the conversion rate in January?", ("30.1%",)),
    Q("demo", "date", "How did conversion change since the last release?", ("v2.3", "23.4%")),
    Q("demo", "date", "What was the conversion rate last week?", ("23.9%",)),
    # demo: other shapes
    Q("demo", "other", "Which steps do users repeat?", ("settings",)),
    Q("demo", "other", "What is the fastest path to conversion?", ("fast path",)),
    # demo: the data cannot answer
    Q("demo", "none", "What is the revenue per user?", ("revenue",)),
    Q("demo", "none", "How many users come from Germany?", ("germany",)),
    Q("demo", "none", "What got worse after v9.9?", ("v9.9",)),
    Q("demo", "none", "What is the conversion rate of enterprise plan users?", ("enterprise",)),
    Q("demo", "none", "What will the conversion rate be next month?", ("next month",)),
    # BPI 2012 (fixtures/bpi2012.yaml)
    Q("bpi", "rate", "What is the approval rate for small loans?", ("amount_under_5k", "3.49%")),
    Q("bpi", "rate", "What is the overall approval rate?", ("17.6%",)),
    Q("bpi", "rate", "How often are applications declined?", ("declined", "%")),
    Q("bpi", "comparison", "Which amount band is approved least often?", ("amount_under_5k",)),
    Q("bpi", "driver", "What matters most for approval?", ("approved", "lift")),
    Q("bpi", "rate", "What is the approval rate of large loans?", ("amount_15k_plus",)),
    # App in the Air (sample, with the config in test_ask_questions.AITA_CONFIG)
    Q("aita", "rate", "What share of users pass onboarding?", ("60.2%",)),
    Q("aita", "driver", "What matters most for passing onboarding?", ("passed", "lift")),
    Q("aita", "loss", "How many users are lost?", ("lost",)),
)


def answered_correctly(q: Q, answer: str, no_answer: str) -> bool:
    """True when the answer names every expected subject (and, for kind none, says the data does not say)."""
    text = answer.lower()
    if q.kind == "none":
        return text.startswith(no_answer.lower()) and all(e.lower() in text for e in q.expect)
    return not text.startswith(no_answer.lower()) and all(e.lower() in text for e in q.expect)
