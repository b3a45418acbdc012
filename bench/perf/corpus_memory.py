"""Peak memory of `escalator corpus convert` as its input grows: flat, since it streams.

    python -m bench.perf.corpus_memory [--conversations 2000] [--times 10]

Writes two made-up inputs of each format that has a JSON list (twcc) or is text
(dfrustration) in a temporary folder, one with --conversations conversations and one
--times as long, converts each with `escalator corpus convert` in its own process, and
prints each run's peak resident memory (the kernel's maxrss of that process) and the
ratio long / short: about 1.0 when memory does not grow with the input (reading the
whole file first would make it grow with the file's size). The folder is removed at the
end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MESSAGE = ("I ordered a pair of running shoes last week and they still have not arrived, "
           "where are they?")


def write_input(path: Path, form: str, conversations: int) -> None:
    """A made-up input of FORM with CONVERSATIONS conversations of 4 customer messages."""
    with path.open("w", encoding="utf-8") as out:
        if form == "twcc":
            out.write("[")
            for n in range(conversations):
                chat = {"dialogHeader": {"sessionID": f"s{n}"}, "dialogContent": [
                    message for i in range(4) for message in (
                        {"client": "c", "message": f"{MESSAGE} ({i})"},
                        {"agent": "a", "message": "Sorry to hear that, let me check."})]}
                out.write(("," if n else "") + json.dumps(chat))
            out.write("]")
        else:
            for n in range(conversations):
                out.write(f"----------  [{n}]  ----------\n")
                for i in range(4):
                    out.write(f"USER: {MESSAGE} ({i}) {{1,2,1}}\nSUPP: Let me check. ^AB\n")


def peak_kb(form: str, source: Path, target: Path) -> int:
    """The peak resident memory, in KB, of one conversion in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "escalator", "corpus", "convert", "--from", form, str(source),
         "-o", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"corpus_memory: the conversion of {source} failed")
    return usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--times", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="escalator-corpus-memory-"))
    try:
        print(f"{'format':13} {'conversations':>13} {'input':>9} {'peak RSS':>9}")
        for form in ("twcc", "dfrustration"):
            peaks = []
            for count in (args.conversations, args.conversations * args.times):
                source = folder / f"{form}-{count}"
                write_input(source, form, count)
                peaks.append(peak_kb(form, source, folder / "out.jsonl"))
                print(f"{form:13} {count:>13,} {source.stat().st_size / 1e6:7.1f} MB "
                      f"{peaks[-1] / 1024:6.1f} MB", flush=True)
                source.unlink()
            print(f"{form:13} peak RSS, {args.times} x the input: {peaks[1] / peaks[0]:.2f} x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
