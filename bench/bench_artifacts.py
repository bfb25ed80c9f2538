"""Artifact throughput: 1,000 small files and one large file, to S3 (moto's server) and to local disk.

Run: ``.venv/bin/python bench/bench_artifacts.py [--small 1000 --small-kb 4 --big-mb 200]``.
moto's ``moto_server`` runs in its own process on 127.0.0.1, so its CPU and memory are not counted
as the client's; on a real S3 endpoint the network decides. Each figure goes through the same
``ArtifactRepository`` calls the tracking client makes (``log_artifacts``, ``log_artifact``,
``download_artifacts``). The client's peak memory shows large files are streamed, not held.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from evalkit.tracking.artifacts import ArtifactRepository, get_artifact_repository

MB = 1024 * 1024


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return server, endpoint
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("moto_server did not start")


def make_inputs(folder: Path, small: int, small_kb: int, big_mb: int) -> tuple[Path, Path]:
    small_dir = folder / "small"
    for i in range(small):
        path = small_dir / f"part-{i // 100:02d}" / f"file-{i:04d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(small_kb * 1024))
    big = folder / "big.bin"
    chunk = os.urandom(MB)
    with open(big, "wb") as handle:
        for _ in range(big_mb):
            handle.write(chunk)
    return small_dir, big


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(name: str, repository: ArtifactRepository, small_dir: Path, big: Path, out: Path) -> list[str]:
    files = sum(1 for p in small_dir.rglob("*") if p.is_file())
    small_mb = sum(p.stat().st_size for p in small_dir.rglob("*") if p.is_file()) / MB
    big_mb = big.stat().st_size / MB
    up_small = timed(lambda: repository.log_artifacts(small_dir, "small"))
    down_small = timed(lambda: repository.download_artifacts("small", out / name / "small"))
    up_big = timed(lambda: repository.log_artifact(big, "big"))
    down_big = timed(lambda: repository.download_artifacts("big/big.bin", out / name / "big"))
    assert (out / name / "big" / "big.bin").stat().st_size == big.stat().st_size
    assert sum(1 for p in (out / name / "small").rglob("*") if p.is_file()) == files
    shutil.rmtree(out / name)
    return [
        f"| {name} | {files:,} small files ({small_mb:.1f} MB) upload | {up_small:.2f} s | {files / up_small:,.0f} files/s |",
        f"| {name} | {files:,} small files download | {down_small:.2f} s | {files / down_small:,.0f} files/s |",
        f"| {name} | 1 file of {big_mb:.0f} MB upload | {up_big:.2f} s | {big_mb / up_big:,.0f} MB/s |",
        f"| {name} | 1 file of {big_mb:.0f} MB download | {down_big:.2f} s | {big_mb / down_big:,.0f} MB/s |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000, help="number of small files")
    parser.add_argument("--small-kb", type=int, default=4, help="size of each small file")
    parser.add_argument("--big-mb", type=int, default=200, help="size of the large file")
    args = parser.parse_args()

    import boto3

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    server, endpoint = start_moto()
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
    })
    try:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        with tempfile.TemporaryDirectory(prefix="evalkit-bench-") as tmp:
            folder = Path(tmp)
            small_dir, big = make_inputs(folder / "in", args.small, args.small_kb, args.big_mb)
            rows = ["| backend | what | time | throughput |", "|---|---|---|---|"]
            rows += measure("local disk", get_artifact_repository(str(folder / "store" / "run" / "artifacts")),
                            small_dir, big, folder / "out")
            rows += measure("S3 (moto_server)", get_artifact_repository(f"s3://{bucket}/run/artifacts"),
                            small_dir, big, folder / "out")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("\n".join(rows))
        print(f"client peak RSS: {peak:.0f} MB, {peak - baseline:.0f} MB above the {baseline:.0f} MB after imports "
              f"(the {args.big_mb} MB file is streamed, never held whole)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
