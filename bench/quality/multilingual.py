"""How the scores hold up outside English: frustration across translations, requests per language.

    python -m bench.quality.multilingual [--rules rules/lexicons] [--json]

- frustration: every message of bench/quality/data/bilingual_frustration.yaml (English
  messages with a rater's 0-4 label and casual es/de/fr/pt translations) is scored on its own
  (a first turn, fresh memory) through `score_turn`. Per language: Pearson r of
  `frustration.score` (and of `frustration.fitted`, the fitted layer) against the label,
  and the mean absolute gap between each translation's score and its English original's
  (0 means translation does not matter).
- requests: precision and recall of `requested_human` per language on the labelled cases
  in tests/scoring (request_cases.yaml, tuned on; request_cases_heldout.yaml, not), and
  how often the language detector named the right language or said "und". No language
  is sent with these messages, as when a caller sends none.

Our own text, English-centred labels: a low r in one language alone means that
language's vocabulary misses cues the English one has.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import yaml

from bench.common.stats import pearson
from escalator.model import BotReply, Message, Turn
from escalator.scoring import Lexicons, load_lexicons, score_turn

ROOT = Path(__file__).resolve().parents[2]
FRUSTRATION_SET = Path(__file__).with_name("data") / "bilingual_frustration.yaml"
REQUEST_SETS = {"tuned": ROOT / "tests" / "scoring" / "request_cases.yaml",
                "held_out": ROOT / "tests" / "scoring" / "request_cases_heldout.yaml"}
LANGUAGES = ("en", "es", "de", "fr", "pt")


def _facts(text: str, lexicons: Lexicons, language: str | None = None) -> dict[str, Any]:
    """The facts of one message scored as the first turn of a conversation."""
    turn = Turn("t-1", Message(text=text, language=language), BotReply())
    return score_turn(turn, {}, lexicons).facts


def frustration_by_language(lexicons: Lexicons, path: Path = FRUSTRATION_SET) -> dict[str, Any]:
    """Per language: r of frustration.score vs the label, and the mean gap to English."""
    messages = yaml.safe_load(path.read_text(encoding="utf-8"))["messages"]
    labels = [float(m["label"]) for m in messages]
    facts = {lang: [_facts(m[lang], lexicons, lang) for m in messages] for lang in LANGUAGES}
    result: dict[str, Any] = {}
    for fact, prefix in (("frustration.score", ""), ("frustration.fitted", "fitted_")):
        scores = {lang: [float(f[fact]) for f in facts[lang]] for lang in LANGUAGES}
        for lang in LANGUAGES:
            gaps = [abs(a - b) for a, b in zip(scores[lang], scores["en"], strict=True)]
            result.setdefault(lang, {}).update({
                f"{prefix}pearson_r": round(pearson(scores[lang], labels), 3),
                f"{prefix}mean_abs_gap_to_en": round(statistics.fmean(gaps), 3),
                f"{prefix}mean_score": round(statistics.fmean(scores[lang]), 3)})
    return result


def requests_by_language(lexicons: Lexicons, path: Path) -> dict[str, Any]:
    """Per language: requested_human precision/recall and detected-language shares."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    result: dict[str, Any] = {}
    for lang, groups in data.items():
        tp = fp = fn = right = und = total = 0
        for key in ("asks", "not_asks"):
            for text in groups.get(key, []):
                facts = _facts(text, lexicons)
                asked, expected = facts["requested_human"] is True, key == "asks"
                tp += asked and expected
                fp += asked and not expected
                fn += expected and not asked
                right += facts["message.language"] == lang
                und += facts["message.language"] == "und"
                total += 1
        result[lang] = {"precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
                        "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
                        "language_right": round(right / total, 3),
                        "language_und": round(und / total, 3), "cases": total}
    return result


def measure(lexicons_dir: Path | str) -> dict[str, Any]:
    """Every multilingual number, from the vocabularies in `lexicons_dir`."""
    lexicons = load_lexicons(Path(lexicons_dir))
    return {"frustration": frustration_by_language(lexicons),
            "requests": {name: requests_by_language(lexicons, path)
                         for name, path in REQUEST_SETS.items()}}


def _print(result: dict[str, Any]) -> None:
    for title, prefix in (("frustration.score", ""), ("frustration.fitted", "fitted_")):
        print(f"{title} (bench/quality/data/bilingual_frustration.yaml)")
        print("lang  r vs label  mean |score - en|  mean score")
        for lang, row in result["frustration"].items():
            print(f"{lang:5s} {row[prefix + 'pearson_r']:10.3f} "
                  f"{row[prefix + 'mean_abs_gap_to_en']:18.3f} {row[prefix + 'mean_score']:11.3f}")
    for name, rows in result["requests"].items():
        print(f"\nrequested_human, {name} cases")
        print("lang  precision  recall  language right  und  cases")
        for lang, row in rows.items():
            print(f"{lang:5s} {row['precision']:9.3f} {row['recall']:7.3f} "
                  f"{row['language_right']:14.3f} {row['language_und']:4.3f} {row['cases']:6d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default=str(ROOT / "rules" / "lexicons"),
                        help="the lexicons folder (default: rules/lexicons)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    result = measure(args.rules)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)


if __name__ == "__main__":
    main()
