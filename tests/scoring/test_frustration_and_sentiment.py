"""Sentiment and frustration: per turn, and over a conversation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from escalator.model import Turn
from escalator.scoring import Lexicons, ScoredTurn
from escalator.scoring.frustration import log_odds
from escalator.scoring.text import fold

Score = Callable[..., ScoredTurn]
Converse = Callable[[Iterable[Turn | str]], list[ScoredTurn]]


def test_an_angry_repeated_complaint_is_more_frustrated_than_a_calm_question(
        score: Score) -> None:
    calm = score("Hello, could you tell me when my parcel will arrive?")
    angry = score("I ALREADY TOLD YOU, MY PARCEL STILL HASN'T ARRIVED!!!")
    assert angry.scores.frustration > calm.scores.frustration + 0.4
    assert calm.facts["frustration.cues"] == ()
    assert {"repetition", "shouting", "exclamation"} <= set(angry.facts["frustration.cues"])


@pytest.mark.parametrize(("text", "cue"), [
    ("This is the third time I'm writing about this", "repetition"),
    ("I have been waiting for 3 weeks", "waiting"),
    ("I'm going to cancel my account and switch to another provider", "threat_to_leave"),
    ("I'll post this on social media", "public_complaint"),
    ("I'm taking this to the ombudsman", "public_complaint"),
    ("what the fuck is going on", "profanity"),
    ("you are completely useless", "insult"),
    ("great, just great. thanks for nothing", "sarcasm"),
    ("you said you would call me back yesterday", "broken_promise"),
    ("WHY IS NOTHING WORKING TODAY", "shouting"),
    ("where is it???", "exclamation"),
    ("Ya se lo dije dos veces", "repetition"),
    ("Llevo esperando hace 2 semanas", "waiting"),
    ("Ich warte seit 3 Wochen, schon wieder nichts", "waiting"),
    ("Ich kündige meinen Vertrag und wechsle zu einem anderen Anbieter", "threat_to_leave"),
    ("Je vais résilier mon abonnement", "threat_to_leave"),
    ("c'est la troisième fois que j'appelle", "repetition"),
    ("Vou reclamar no Reclame Aqui e no Procon", "public_complaint"),
    ("já disse isso três vezes", "repetition"),
])
def test_cues_are_found_and_labelled(score: Score, text: str, cue: str) -> None:
    result = score(text)
    assert cue in result.facts["frustration.cues"]
    assert result.scores.frustration > 0


def test_short_capitals_are_not_shouting(score: Score) -> None:
    assert "shouting" not in score("OK THX").facts["frustration.cues"]


def test_sentiment_is_vader_compound_per_turn(score: Score) -> None:
    assert score("This is terrible, I hate it").facts["sentiment.score"] < -0.5
    assert score("Thank you, that was great help!").facts["sentiment.score"] > 0.5
    assert score("the parcel is at the depot").facts["sentiment.score"] == 0.0


def test_extra_valence_words_give_other_languages_a_sentiment(score: Score) -> None:
    assert score("el servicio es pésimo").facts["sentiment.score"] < -0.3
    assert score("das ist furchtbar").facts["sentiment.score"] < -0.3


def test_a_worsening_conversation_has_negative_trend_and_streak(converse: Converse) -> None:
    results = converse([
        "Hi, I have a question about my bill",
        "That is not right, I was charged twice",
        "This is terrible, nobody helps me",
        "I am angry, this is the worst service ever",
    ])
    last = results[-1].facts
    assert last["sentiment.trend"] < 0
    assert last["sentiment.negative_streak"] == 3
    assert last["sentiment.mean"] < 0
    # The mean lags the latest turn: recent turns weigh more, but not all.
    assert last["sentiment.score"] < last["sentiment.mean"]


def test_a_positive_turn_ends_the_negative_streak(converse: Converse) -> None:
    results = converse(["This is terrible", "Awful, awful service", "Oh great, thank you so much!"])
    assert [r.facts["sentiment.negative_streak"] for r in results] == [1, 2, 0]


def test_frustration_mean_rises_and_then_fades(converse: Converse) -> None:
    angry = "I ALREADY TOLD YOU THREE TIMES, THIS IS USELESS!!!"
    calm = "ok, my customer number is 55123"
    results = converse([angry, angry, calm, calm, calm, calm])
    means = [r.facts["frustration.mean"] for r in results]
    assert means[1] > 0.6
    assert means[2] < means[1]
    assert means[-1] < means[2]
    # A calm message still has the baseline of any message to customer service (people
    # rate one about 1 of 4), well below the angry ones.
    assert results[-1].facts["frustration.score"] < 0.4


def test_an_intent_only_turn_is_neutral_and_keeps_the_conversation_means(
        converse: Converse, turn: Callable[..., Turn]) -> None:
    results = converse(["This is terrible, I hate it",
                        turn(None, intent="order_status", confidence=0.9)])
    first, voice = results[0].facts, results[1].facts
    assert voice["sentiment.score"] == 0.0
    assert voice["frustration.cues"] == ()
    assert voice["sentiment.mean"] == first["sentiment.mean"]
    assert voice["sentiment.negative_streak"] == first["sentiment.negative_streak"] == 1


def test_a_repeated_shouted_complaint_outranks_a_question_which_outranks_thanks(
        score: Score) -> None:
    angry = score("I already told you THREE TIMES, where is my refund???")
    asking = score("Where is my refund?")
    thanks = score("Thanks, got it!")
    assert (angry.scores.frustration > asking.scores.frustration + 0.15
            > thanks.scores.frustration + 0.3)
    assert {"repetition", "exclamation", "problem"} <= set(angry.facts["frustration.cues"])
    assert thanks.facts["frustration.cues"] == ("gratitude",)


def test_the_score_is_explained_by_the_cues_it_lists(score: Score, lexicons: Lexicons) -> None:
    result = score("This is the third time: my internet is STILL NOT WORKING!!")
    cues = result.facts["frustration.cues"]
    assert isinstance(cues, tuple)
    sentiment = float(result.facts["sentiment.score"])  # type: ignore[arg-type]
    evidence = log_odds(sentiment, cues, lexicons.params)
    assert result.scores.frustration == pytest.approx(1 / (1 + math.exp(-evidence)), abs=1e-3)
    # Every cue that fired has a weight a policy owner can read in scoring.yaml.
    assert set(cues) <= set(lexicons.params.cue_weights)


def test_a_shouted_part_of_a_longer_message_is_shouting(score: Score) -> None:
    shouted = score("I ordered on Monday and the tracking says delivered but THE PARCEL NEVER "
                    "CAME, can you check please")
    assert "shouting" in shouted.facts["frustration.cues"]
    # Acronyms and a capitalised name are not shouting.
    calm = score("I sent the UPS tracking number by DM to the team at AT&T support")
    assert "shouting" not in calm.facts["frustration.cues"]


def test_thanks_lower_frustration_but_sarcastic_thanks_do_not(score: Score) -> None:
    plain = score("the parcel arrived today")
    thanked = score("the parcel arrived today, thank you")
    sarcastic = score("the parcel arrived broken, thanks for nothing")
    assert thanked.scores.frustration < plain.scores.frustration
    assert sarcastic.scores.frustration > plain.scores.frustration
    assert {"sarcasm", "gratitude"} <= set(sarcastic.facts["frustration.cues"])


def test_a_long_explanation_is_more_frustrated_than_a_short_one(score: Score) -> None:
    short = score("my order is late")
    long = score("my order is late, I ordered it two weeks ago for my daughter's birthday "
                 "and the tracking page has shown the same status for days")
    assert "long_message" in long.facts["frustration.cues"]
    assert "long_message" not in short.facts["frustration.cues"]
    assert long.scores.frustration > short.scores.frustration


def test_a_plea_for_help_is_not_read_as_positive(score: Score) -> None:
    # VADER alone scores "help" and "please" as positive; in customer service they are
    # the words of a request (sentiment.yaml sets them neutral).
    assert score("please help me with my support ticket").facts["sentiment.score"] == 0.0
    assert score("Thank you, that was great help!").facts["sentiment.score"] > 0.5


# One typical phrasing per cue family and language: the families are kept in step.
FAMILIES: dict[str, dict[str, str]] = {
    "repetition": {"en": "I already told you this", "es": "ya se lo dije ayer",
                   "de": "ich schreibe schon wieder", "fr": "je vous ai déjà dit ça",
                   "pt": "eu já disse isso"},
    "waiting": {"en": "I have been waiting for 2 weeks", "es": "llevo esperando una semana",
                "de": "ich warte seit 2 Wochen", "fr": "j'attends depuis 2 semaines",
                "pt": "estou esperando há 2 semanas"},
    "threat_to_leave": {"en": "I will cancel my account", "es": "me voy a dar de baja",
                        "de": "ich kündige meinen Vertrag", "fr": "je vais résilier mon contrat",
                        "pt": "vou cancelar minha conta"},
    "public_complaint": {"en": "I'll leave a bad review", "es": "lo voy a publicar en twitter",
                         "de": "ich gehe zur Verbraucherzentrale",
                         "fr": "je vais porter plainte", "pt": "vou reclamar no Procon"},
    "profanity": {"en": "this is bullshit", "es": "joder, otra vez", "de": "so ein Mist",
                  "fr": "c'est le bordel", "pt": "que porra é essa"},
    "insult": {"en": "you are useless", "es": "sois unos inútiles", "de": "ihr seid unfähig",
               "fr": "vous êtes des incompétents", "pt": "vocês são uns incompetentes"},
    "sarcasm": {"en": "thanks for nothing", "es": "gracias por nada", "de": "danke für nichts",
                "fr": "merci pour rien", "pt": "obrigado por nada"},
    "broken_promise": {"en": "you promised a refund", "es": "me prometieron un reembolso",
                       "de": "Sie haben es versprochen", "fr": "vous avez promis de rappeler",
                       "pt": "me prometeram um reembolso"},
    "problem": {"en": "my router is not working", "es": "el router no funciona",
                "de": "der Router funktioniert nicht", "fr": "le routeur ne marche pas",
                "pt": "o roteador não funciona"},
    "negation": {"en": "nothing has changed", "es": "nada ha cambiado",
                 "de": "nichts hat sich getan", "fr": "rien n'a changé", "pt": "nada mudou"},
    "gratitude": {"en": "thank you so much", "es": "muchas gracias", "de": "vielen Dank",
                  "fr": "merci beaucoup", "pt": "muito obrigado"},
}


@pytest.mark.parametrize(("cue", "language"), [
    (cue, language) for cue, phrasings in FAMILIES.items() for language in phrasings])
def test_each_cue_family_fires_in_each_language(score: Score, cue: str, language: str) -> None:
    assert cue in score(FAMILIES[cue][language]).facts["frustration.cues"]


def test_every_family_is_listed_in_every_language(lexicons: Lexicons) -> None:
    measured = {"shouting", "exclamation", "long_message"}
    assert set(FAMILIES) == set(lexicons.params.cue_weights) - measured
    assert all(set(phrasings) == {"en", "es", "de", "fr", "pt"} for phrasings in FAMILIES.values())


# The complaints English had cues or sentiment words for and the other languages
# lacked: worst service, scams, swearing, "fourth time", plural insults, leaving to a
# competitor, fed up, "still no...".
@pytest.mark.parametrize(("text", "cue"), [
    ("el peor servicio que he tenido", "insult"),
    ("das ist der schlechteste Service überhaupt", "insult"),
    ("c'est le pire service client", "insult"),
    ("pior atendimento do Brasil", "insult"),
    ("esto es una estafa", "insult"),
    ("totale Abzocke", "insult"),
    ("c'est une arnaque", "insult"),
    ("isso é golpe", "insult"),
    ("ihr seid alle nutzlose Idioten", "insult"),
    ("vocês são inúteis", "insult"),
    ("maldita sea, no funciona", "profanity"),
    ("diese verdammte App", "profanity"),
    ("porra, de novo", "profanity"),
    ("es la cuarta vez que escribo", "repetition"),
    ("ich schreibe zum vierten Mal", "repetition"),
    ("c'est la quatrième fois", "repetition"),
    ("é a quarta vez que eu ligo", "repetition"),
    ("vou pra concorrência", "threat_to_leave"),
    ("me voy a la competencia", "threat_to_leave"),
    ("je vais voir ailleurs", "threat_to_leave"),
    ("estou de saco cheio", "problem"),
    ("ya me harté de esto", "problem"),
    ("ich habe die Nase voll", "problem"),
    ("j'en ai marre", "problem"),
    ("e nada do pacote", "waiting"),
    ("todavía no llega mi pedido", "waiting"),
    ("immer noch nicht angekommen", "waiting"),
    ("toujours pas reçu mon colis", "waiting"),
])
def test_complaints_of_every_language_fire_their_family(score: Score, text: str,
                                                         cue: str) -> None:
    assert cue in score(text).facts["frustration.cues"]


@pytest.mark.parametrize(("negative", "positive"), [
    ("estoy muy decepcionado, es una porquería", "estoy muy contento, todo solucionado"),
    ("ich bin total enttäuscht und genervt", "ich bin sehr zufrieden, echt hilfreich"),
    ("je suis déçu et énervé, c'est pénible", "je suis ravi, c'est résolu, très sympa"),
    ("estou decepcionado e revoltado", "estou muito satisfeito, tudo resolvido"),
])
def test_each_language_has_negative_and_positive_sentiment_words(
        score: Score, negative: str, positive: str) -> None:
    assert score(negative).facts["sentiment.score"] < -0.3
    assert score(positive).facts["sentiment.score"] > 0.3


def test_no_other_language_turns_an_english_sentiment_word_around() -> None:
    # All languages share one lexicon: a word that is also English must keep the sign
    # VADER gives it, and a word shared by languages gets one valence.
    english = SentimentIntensityAnalyzer().lexicon
    path = Path(__file__).resolve().parents[2] / "rules" / "lexicons" / "sentiment.yaml"
    valence = yaml.safe_load(path.read_text(encoding="utf-8"))["valence"]
    seen: dict[str, float] = {}
    for language, words in valence.items():
        if language == "en":
            continue
        for word, value in words.items():
            key = fold(word)
            if key in english:
                assert english[key] * value > 0, (language, word)
            assert seen.setdefault(key, value) == value, (language, word)


@pytest.mark.parametrize("text", [
    "This is NOT good at all!!! I'm kind of angry, but thanks anyway :)",
    "The service was great but the delivery was terrible",
    "I really, really hate waiting. Never again.",
    "not bad, actually pretty good",
    "  Ok.  ",
    "Sort of useless?? kind of helpful...",
])
def test_vader_without_the_emoji_pass_scores_as_vader_does(text: str) -> None:
    from escalator.scoring.sentiment import vader_compound_without_emoji

    analyzer = SentimentIntensityAnalyzer()
    assert vader_compound_without_emoji(analyzer, text) == pytest.approx(
        analyzer.polarity_scores(text)["compound"], abs=1e-12)


# Words that trigger VADER's context rules (negations up to three words back, "least",
# "never so", "without doubt", idioms, boosters in capitals, "but", "kind of", "no"
# before a lexicon word) next to lexicon words, at every position of short texts.
_VADER_CONTEXT_WORDS = (
    "no", "not", "never", "so", "this", "without", "doubt", "least", "at", "very", "kind",
    "of", "sort", "the", "shit", "bomb", "bad", "ass", "yeah", "right", "good", "GOOD",
    "great", "terrible", "hate", "love", "extremely", "barely", "but", "BUT", "isn't",
    "don't", "nor", "or", "kiss", "death", "to", "die", "for", "help", "thanks", "order",
    "parcel", ":)", ":(", "!", "?", "!!!", "??", "angry", "super", "fine", "nice,",
    "awful.", "Wow!", "NEVER", "NO",
)


def test_vader_on_a_word_neighbourhood_scores_exactly_as_vader_does() -> None:
    # vader_compound_without_emoji() scores each lexicon word on its neighbourhood of
    # tokens rather than the whole text; the result must be VADER's to the last bit.
    import random

    from escalator.scoring.sentiment import vader_compound_without_emoji

    analyzer = SentimentIntensityAnalyzer()
    rng = random.Random(7)
    for _ in range(3000):
        text = " ".join(rng.choice(_VADER_CONTEXT_WORDS) for _ in range(rng.randint(1, 14)))
        assert vader_compound_without_emoji(analyzer, text) == (
            analyzer.polarity_scores(text)["compound"]), text
