"""Overhead of autologging (issue 16).

1. ``ek.openai.autolog()``: 1,000 chat calls through ``openai.AsyncOpenAI`` (aiohttp transport) at
   concurrency 64 against the fake server in its own process (100 ms latency), without and with
   the autolog (interleaved, best of ``--repeat``); prints requests/s and the client's CPU time per
   call (``time.process_time``, which includes the autolog's batch writes to the SQLite store).
   Goal: the autolog adds under 5% of client CPU per call and does not change throughput.
   Also, in process and without the network (so without the noise of the machine's other load):
   the autolog's own CPU time per recorded call, batch writes included.
2. ``ek.transformers.autolog()``: a 200-step Trainer run of the tiny BERT of
   tests/autolog/tiny_bert.py (logging every step, log_every_n_steps=1, model not logged), without
   and with the autolog; prints wall times. Goal: under 2% of the training's wall time.

Run: ``.venv/bin/python bench/bench_autolog.py [--calls 1000] [--repeat 3] [--skip-trainer] [--skip-openai]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_runner import start_server

import evalkit as ek

ROOT = Path(__file__).resolve().parent.parent


async def _calls(base_url: str, calls: int, concurrency: int) -> None:
    import openai

    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0,
                                  http_client=openai.DefaultAioHttpClient()) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"Question {i}: what colour is the lamp?"}])

        await asyncio.gather(*(one(i) for i in range(calls)))


def openai_round(base_url: str, calls: int, concurrency: int, autolog: bool) -> tuple[float, float]:
    """(requests/s, client CPU ms per call)."""
    if autolog:
        ek.openai.autolog()
    try:
        with ek.start_run():
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(_calls(base_url, calls, concurrency))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        ek.openai.autolog(disable=True)
    return calls / wall, cpu / calls * 1000


def bench_openai(calls: int, repeat: int) -> None:
    process, base_url = start_server(0.1)
    try:
        openai_round(base_url, 200, 64, autolog=False)  # warm up imports and connections
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(repeat):
            for autolog in (False, True):
                results[autolog].append(openai_round(base_url, calls, 64, autolog))
    finally:
        process.kill()
    for autolog in (False, True):
        rps = max(r for r, _ in results[autolog])
        cpu = min(c for _, c in results[autolog])
        print(f"openai autolog={'on ' if autolog else 'off'}: {rps:7.1f} requests/s (best), "
              f"{cpu:.2f} ms client CPU per call (best of {repeat})")
    base_cpu = min(c for _, c in results[False])
    print(f"  -> overhead {(min(c for _, c in results[True]) - base_cpu) / base_cpu * 100:+.1f}% CPU per call")


def bench_record_path(calls: int = 5000) -> None:
    """CPU of the autolog's work on one call (wrapper state, pricing, row, batched writes)."""
    from openai.types.chat import ChatCompletion

    from evalkit.autolog import openai as autolog_openai

    response = ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 2}}})
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}]}
    ek.openai.autolog()
    try:
        with ek.start_run():
            start = time.process_time()
            for _ in range(calls):
                autolog_openai._begin("chat.completions", request).finished(response)
            cpu = time.process_time() - start
    finally:
        ek.openai.autolog(disable=True)
    print(f"openai autolog record path: {cpu / calls * 1000:.3f} ms CPU per call ({calls} calls, in process)")


def trainer_round(tmp: Path, autolog: bool, steps: int) -> tuple[float, float]:
    """Wall time of ``trainer.train()``, and the time spent inside evalkit's callback during it."""
    sys.path.insert(0, str(ROOT / "tests" / "autolog"))
    import tiny_bert
    from transformers import PrinterCallback, Trainer, TrainingArguments

    tokenizer = tiny_bert.tokenizer(tmp)
    data = tiny_bert.rows(tokenizer, steps * 4)
    args = TrainingArguments(output_dir=str(tmp / "out"), num_train_epochs=1, per_device_train_batch_size=4,
                             logging_steps=1, save_strategy="no", disable_tqdm=True, use_cpu=True, seed=0,
                             log_level="error")
    if autolog:
        ek.transformers.autolog(log_every_n_steps=1, log_models=False)
    inside = [0.0]
    try:
        with ek.start_run():
            trainer = Trainer(model=tiny_bert.model(), args=args, train_dataset=data, processing_class=tokenizer)
            trainer.remove_callback(PrinterCallback)  # its print of every step's logs is not what we measure
            for callback in trainer.callback_handler.callbacks:
                if type(callback).__name__ == "EvalkitCallback":
                    _time_hooks(callback, inside)
            start = time.perf_counter()
            trainer.train()
            elapsed = time.perf_counter() - start
    finally:
        ek.transformers.autolog(disable=True)
    return elapsed, inside[0]


def _time_hooks(callback: object, inside: list[float]) -> None:
    """Add the time each of the callback's hooks takes to ``inside[0]``."""
    for name in ("on_train_begin", "on_log", "on_epoch_end", "on_train_end"):
        hook = getattr(callback, name)

        def timed(*args: object, _hook=hook, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                inside[0] += time.perf_counter() - start

        setattr(callback, name, timed)


def bench_trainer(repeat: int, steps: int = 200) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        trainer_round(tmp, False, 20)  # warm-up
        times: dict[bool, list[float]] = {False: [], True: []}
        shares: list[float] = []
        for _ in range(repeat):
            for autolog in (False, True):
                elapsed, inside = trainer_round(tmp, autolog, steps)
                times[autolog].append(elapsed)
                if autolog:
                    shares.append(inside / elapsed)
    off, on = min(times[False]), min(times[True])
    print(f"trainer {steps} steps, logging every step: autolog off {off:.2f} s, on {on:.2f} s (best of {repeat}; "
          f"medians {statistics.median(times[False]):.2f} / {statistics.median(times[True]):.2f} s) "
          f"-> overhead {(on - off) / off * 100:+.1f}% of wall time")
    print(f"time inside evalkit's callback: {statistics.median(shares) * 100:.2f}% of the training's wall time "
          f"(median of {repeat}; max {max(shares) * 100:.2f}%)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-openai", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ek.set_tracking_uri(str(Path(folder) / "bench.db"))
        if not args.skip_openai:
            bench_record_path()
            bench_openai(args.calls, args.repeat)
        if not args.skip_trainer:
            bench_trainer(args.repeat)


if __name__ == "__main__":
    main()
