"""Loops: a conversation going round in circles, from text or from NLU results alone.

Each turn can add loop events, and loop.score is 1 - exp(-level), where the level is the
weighted sum of the events with each turn's weight fading by half every half_life_turns:
so one early repeat fades away over a long, smooth conversation. The events:

- repeat: the customer's message is similar to a recent one (by one-way signatures,
  see text.signature; never the text itself);
- fallback: the bot's reply this message answers was a fallback (bot.fallback);
- not understood: the NLU gave a fallback-like intent (intent.not_understood in
  scoring.yaml: nlu_fallback, out_of_scope, ...) or a confidence below
  intent.low_confidence_below;
- bot repeat: the bot sent a prompt it sent before, variants of one prompt
  ("ask_email_retry") counting as the same prompt;
- oscillation: the bot went back to the prompt before the last one (A B A);
- intent repeat: the customer's intent was seen before (answers such as "affirm" or
  "inform", and not-understood outcomes, are not requests and never repeat);
- rejection: the customer turned down what the bot said (intent.rejection: deny, ...)
  and had turned it down before in this conversation. A single "no" answers a yes/no
  question ("anything else?"); saying no again and again is a negotiation going nowhere.
  loop.rejections counts every rejection, so the pushes are loop.rejections - 1.

One event lowers the level instead: an answer, the customer giving what the bot asked
for (intent.answers: confirm, inform, ...; not when the NLU was unsure). A call that
stumbled early and is now moving forward is not going round in circles, and a score
that can only climb would hold a conversation's worst moment against it to the end.
The level never goes below 0, so answers cannot bank credit for a later loop.

A re-ask is counted (loop.reasks, no push of its own) when the bot sends the prompt it
sent last again right after the customer answered it: the answer was not taken. It tells
a bot stuck on one question from a negotiation, where one prompt id is proposed again
after a "no" (propose_date with another date) and is no loop at all.

Every event also has its own counter fact, so a score is always explained by counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from escalator.model import Turn
from escalator.scoring.labels import intent_key, prompt_key
from escalator.scoring.lexicons import Lexicons, Params
from escalator.scoring.memory import Memory, remember
from escalator.scoring.text import (
    pack_signature,
    short_hash,
    signature,
    similarity,
    unpack_signature,
)


@dataclass(frozen=True)
class LoopFacts:
    """The loop facts of a turn (counts are for the conversation so far)."""

    score: float
    repeats: int
    fallback_streak: int
    fallbacks: int
    bot_repeats: int
    intent_repeats: int
    low_confidence_streak: int
    oscillations: int
    not_understood: int
    rejections: int
    answers: int
    reasks: int


def message_signature(words: Sequence[str], lexicons: Lexicons) -> tuple[int, ...]:
    """The signature of a message's content words, or () when it is too short to compare.

    Stop words and small talk are dropped first: "I want to cancel my order" and "I want
    to track my order" share most of their words but none of their content.
    """
    params = lexicons.params
    if len(words) < params.signature_min_words:
        return ()
    content = [w for w in words if w not in lexicons.not_content]
    if len(content) < max(1, params.signature_min_content_words):
        return ()
    return signature(content, params.signature_size, params.signature_bits)


def is_repeat(current: tuple[int, ...], memory: Memory, params: Params) -> bool:
    """The message is similar enough to one of the remembered ones."""
    if not current or memory.signature_bits != params.signature_bits:
        return False
    return any(
        similarity(current, unpack_signature(packed, params.signature_bits),
                   params.signature_size) >= params.repeat_similarity
        for packed in memory.signatures)


def low_confidence_streak(previous: int, confidence: float | None, params: Params) -> int:
    """Consecutive low-confidence turns; a turn sent without a confidence leaves it unchanged.

    Unchanged rather than reset: a voice turn or a button press without NLU output says
    nothing about whether the bot understands the customer.
    """
    if confidence is None:
        return previous
    return previous + 1 if confidence < params.low_confidence_below else 0


def step(memory: Memory, turn: Turn, words: Sequence[str],
         lexicons: Lexicons) -> tuple[LoopFacts, Memory]:
    """Update the loop counters with this turn and score how much the conversation circles."""
    params = lexicons.params
    current = message_signature(words, lexicons)
    repeat = is_repeat(current, memory, params)
    signatures = memory.signatures if memory.signature_bits == params.signature_bits else ()
    if current:
        signatures = (*signatures, pack_signature(current, params.signature_bits))
        signatures = signatures[-params.remember:]

    fallback = turn.bot.fallback
    prompts, bot_repeat, oscillation, reask = memory.prompts, False, False, False
    if turn.bot.prompt_id is not None:
        tag = short_hash(prompt_key(turn.bot.prompt_id, params.prompt_variant))
        bot_repeat = tag in prompts
        reask = bool(memory.last_answer) and bool(prompts) and prompts[-1] == tag
        # prompts is in last-sent order, so [-2] is the prompt before the last different one.
        oscillation = len(prompts) >= 2 and prompts[-2] == tag
        prompts = remember(prompts, tag, params.remember)

    message = turn.message
    intents, intent_repeat = memory.intents, False
    not_understood = (message.intent_confidence is not None
                      and message.intent_confidence < params.low_confidence_below)
    rejection = rejected_again = answer = False
    if message.intent is not None:
        key = intent_key(message.intent)
        if key in params.not_understood_intents:
            not_understood = True
        elif key in params.answer_intents:
            answer = not not_understood
        else:
            rejection = key in params.rejection_intents
            rejected_again = rejection and memory.rejections > 0
            tag = short_hash(message.intent)
            intent_repeat = tag in intents
            intents = remember(intents, tag, params.remember)

    pushed = (params.repeat_weight * repeat + params.fallback_weight * fallback
              + params.bot_repeat_weight * bot_repeat
              + params.oscillation_weight * oscillation
              + params.intent_repeat_weight * intent_repeat
              + params.not_understood_weight * not_understood
              + params.rejection_weight * rejected_again
              - params.answer_weight * answer)
    level = max(0.0, memory.loop_level * params.loop_decay + pushed)
    updated = memory.evolve(
        signature_bits=params.signature_bits,
        signatures=signatures,
        repeats=memory.repeats + repeat,
        fallback_streak=memory.fallback_streak + 1 if fallback else 0,
        fallbacks=memory.fallbacks + fallback,
        prompts=prompts,
        bot_repeats=memory.bot_repeats + bot_repeat,
        oscillations=memory.oscillations + oscillation,
        intents=intents,
        intent_repeats=memory.intent_repeats + intent_repeat,
        not_understood=memory.not_understood + not_understood,
        rejections=memory.rejections + rejection,
        answers=memory.answers + answer,
        last_answer=int(answer),
        reasks=memory.reasks + reask,
        loop_level=level,
        low_confidence_streak=low_confidence_streak(
            memory.low_confidence_streak, message.intent_confidence, params),
    )
    facts = LoopFacts(
        score=max(0.0, min(1.0, 1.0 - math.exp(-level))),
        repeats=updated.repeats,
        fallback_streak=updated.fallback_streak,
        fallbacks=updated.fallbacks,
        bot_repeats=updated.bot_repeats,
        intent_repeats=updated.intent_repeats,
        low_confidence_streak=updated.low_confidence_streak,
        oscillations=updated.oscillations,
        not_understood=updated.not_understood,
        rejections=updated.rejections,
        answers=updated.answers,
        reasks=updated.reasks,
    )
    return facts, updated
