"""Measure the thesis LLM: load, RSS, cold/warm time to first token, tok/s, first complete thesis.

    .venv/bin/python scripts/measure_llm.py                       # 1.5B, 1 thread
    .venv/bin/python scripts/measure_llm.py --threads 2 --grammar
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/measure_llm.py --threads 2
    .venv/bin/python scripts/measure_llm.py --busy 1              # with one core kept busy (as ASR would)

Prints each question's theses and one summary line of medians over the six product questions.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

from cluelypro.llm.llama import LlamaThesisLLM
from cluelypro.llm.prompts import thesis_messages
from cluelypro.llm.thesis_parser import ThesisStreamParser
from cluelypro.prompter.samples import EXAM_QUESTIONS


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def ask(llm: LlamaThesisLLM, question: str, max_tokens: int) -> dict:
    parser, theses, text = ThesisStreamParser(), [], ""
    start = time.perf_counter()
    first_token = first_thesis = last = None
    for piece in llm.stream(thesis_messages(question), max_tokens):
        last = time.perf_counter()
        first_token = first_token or last
        text += piece
        theses += parser.feed(piece)
        if theses and first_thesis is None:
            first_thesis = last
    theses += parser.finish()
    end = time.perf_counter()
    tokens = len(llm._llama.tokenize(text.encode(), add_bos=False)) if text else 0
    return {
        "ttft": (first_token or end) - start,
        "first_thesis": (first_thesis or end) - start,
        "tok_s": (tokens - 1) / (last - first_token) if tokens > 1 and last > first_token else 0.0,
        "theses": theses,
    }


def burn() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grammar", action="store_true")
    parser.add_argument("--busy", type=int, default=0, help="CPU-burning processes alongside")
    parser.add_argument("--max-tokens", type=int, default=180)
    args = parser.parse_args()
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.busy)]
    for burner in burners:
        burner.start()

    llm = LlamaThesisLLM(args.model, threads=args.threads, grammar=args.grammar)
    start = time.perf_counter()
    llm.load()
    load_s, rss = time.perf_counter() - start, rss_mb()
    cold = ask(llm, EXAM_QUESTIONS[0], args.max_tokens)  # whole prompt evaluated: nothing cached yet
    llm._llama.reset()  # forget the cached prefix again, to time warm_up() itself
    start = time.perf_counter()
    llm.warm_up()
    warm_up_s = time.perf_counter() - start
    results = []
    for question in EXAM_QUESTIONS:
        result = ask(llm, question, args.max_tokens)
        results.append(result)
        print(
            f"{question}  ttft={result['ttft']:.2f}s first_thesis={result['first_thesis']:.2f}s "
            f"{result['tok_s']:.1f} tok/s"
        )
        for thesis in result["theses"]:
            print(f"    - {thesis}")

    def median(key: str) -> float:
        return statistics.median(result[key] for result in results)

    print(
        f"SUMMARY model={args.model} threads={args.threads} grammar={args.grammar} busy={args.busy} "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')} load={load_s:.1f}s "
        f"rss={rss:.0f}MB cold_ttft={cold['ttft']:.2f}s warm_up={warm_up_s:.2f}s "
        f"warm_ttft={median('ttft'):.2f}s first_thesis={median('first_thesis'):.2f}s "
        f"tok_s={median('tok_s'):.1f}"
    )
    for burner in burners:
        burner.terminate()


if __name__ == "__main__":
    main()
