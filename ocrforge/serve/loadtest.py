"""A bounded load test of ``ocrforge serve`` on loopback, against :class:`ocrforge.pool.OCRPool` on the same
images in the same run with the same number of workers.

    python -m ocrforge.serve.loadtest --model-dir models/export --images data/split --workers 2 \\
        --requests 300 --clients 8 --out reports/serve_bench        # or: make serve-bench

A real ``ocrforge serve`` subprocess on 127.0.0.1 and an ``OCRPool`` are both loaded; the requests are cut
into ``rounds`` slices, and each round first serves its slice (``clients`` threads each sending the next image,
raw body, ``Content-Type`` from its suffix, until the slice is answered or ``max_seconds`` of serving have
passed in all), then reads exactly the images the server answered with ``OCRPool.imap``, timed from the first
to the last result; alternating cancels slow drifts of background load. Reported: images/s of each (summed
over the rounds), each request's latency (p50, p99), errors, the server's resident memory (its process and its
workers, psutil) before and after, and each served answer compared with the pool's on the same image
(``mismatches``, expected 0). Throughput is reported as served / pooled images per second.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
                 ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp"}


def find_images(source: str | os.PathLike) -> list[Path]:
    """The test images of a split folder (``det/test.txt``) or the image files directly in a folder."""
    source = Path(source)
    if (source / "det" / "test.txt").is_file():
        from ocrforge.data.det_labels import load_testset

        return [s.path for s in load_testset(source)]
    if source.is_dir():
        from ocrforge.cli import list_images

        found = list_images(source)
        if found:
            return found
    raise FileNotFoundError(f"{source} is neither a split folder (det/test.txt) nor a folder of images; run the "
                            f"split stage (dvc repro split) or give a folder of images")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port: int, body: bytes, content_type: str, timeout: float) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/ocr", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _rss_mb(port: int, pid: int) -> dict:
    """Resident memory of the server process and of its OCR workers (their pids from /health), in MiB."""
    import psutil

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/health")
    pids = [w["pid"] for w in json.loads(conn.getresponse().read())["workers"]["processes"]]
    own = psutil.Process(pid).memory_info().rss
    workers = sum(psutil.Process(p).memory_info().rss for p in pids)
    return {"server": round(own / 2**20, 1), "workers": round(workers / 2**20, 1),
            "total": round((own + workers) / 2**20, 1), "worker_processes": len(pids)}


def start_server(model_dir: str | os.PathLike, workers: int, log_file) -> tuple[subprocess.Popen, int]:
    """``ocrforge serve`` on a free loopback port, once /health says every worker is ready."""
    port = _free_port()
    command = [sys.executable, "-m", "ocrforge.cli", "serve", "--model-dir", str(model_dir), "--port", str(port),
               "--workers", str(workers)]
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ocrforge serve exited with {process.returncode}; see {log_file.name}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"ocrforge serve did not become ready in 600 s; see {log_file.name}")


def served_phase(port: int, bodies: list[tuple[bytes, str]], clients: int, max_seconds: float,
                 timeout: float = 120.0) -> dict:
    """``clients`` threads sending ``bodies`` in order (each request the next one) until all are answered or
    ``max_seconds`` pass: ``{"answers": {index: (status, json)}, "latencies_s", "errors", "seconds"}``."""
    answers: dict[int, tuple[int, dict | str]] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    next_index = [0]
    started = time.perf_counter()
    stop_at = started + max_seconds

    def client():
        while True:
            with lock:
                index = next_index[0]
                if index >= len(bodies) or time.perf_counter() > stop_at:
                    return
                next_index[0] += 1
            body, content_type = bodies[index]
            sent = time.perf_counter()
            try:
                answer = _post(port, body, content_type, timeout)
            except (OSError, ValueError) as exc:
                answer = (0, f"{type(exc).__name__}: {exc}")
            elapsed = time.perf_counter() - sent
            with lock:
                answers[index] = answer
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    errors = sum(1 for status, _ in answers.values() if status != 200)
    return {"answers": answers, "latencies_s": latencies, "errors": errors, "seconds": seconds}


def run_loadtest(model_dir: str | os.PathLike, images: list[Path], *, workers: int = 2, requests: int = 300,
                 clients: int = 8, max_seconds: float = 120.0, rounds: int = 3,
                 log_dir: str | os.PathLike | None = None) -> dict:
    """Serve and pool, alternating over ``rounds`` slices of ``requests`` images cycled from ``images``; the
    report (see the module docstring)."""
    from ocrforge.benchmark import machine_info
    from ocrforge.pool import OCRPool

    order = [images[i % len(images)] for i in range(requests)]
    bodies = [(path.read_bytes(), CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"))
              for path in order]
    slices = [[int(i) for i in chunk] for chunk in np.array_split(np.arange(requests), max(1, min(rounds, requests)))]
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="ocrforge-serve-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    answers, latencies, served_seconds, pool_seconds, errors, pooled = {}, [], 0.0, 0.0, 0, {}
    with open(log_dir / "serve.log", "wb") as log_file:
        process, port = start_server(model_dir, workers, log_file)
        try:
            rss_before = _rss_mb(port, process.pid)
            # both stay loaded; each round serves its slice, then pools the same images: drifts in background
            # load hit both alike
            with OCRPool(model_dir, workers=workers) as pool:
                for indices in slices:
                    left = max_seconds - served_seconds
                    if left <= 0:
                        break
                    served = served_phase(port, [bodies[i] for i in indices], clients, left)
                    served_seconds += served["seconds"]
                    latencies += served["latencies_s"]
                    errors += served["errors"]
                    done = [indices[k] for k in sorted(served["answers"])]
                    answers.update({indices[k]: answer for k, answer in served["answers"].items()})
                    started = time.perf_counter()
                    results = [result.to_json() for result in pool.imap([order[i] for i in done])]
                    pool_seconds += time.perf_counter() - started
                    pooled.update(zip(done, results))
            rss_after = _rss_mb(port, process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
    done = sorted(answers)
    served = {"answers": answers, "latencies_s": latencies, "errors": errors, "seconds": served_seconds}
    pooled = [pooled[i] for i in done]
    mismatches = sum(served["answers"][i] != (200, expected) for i, expected in zip(done, pooled))
    latencies_ms = np.asarray(served["latencies_s"]) * 1000.0
    served_rate = len(done) / served["seconds"]
    pool_rate = len(done) / pool_seconds
    return {
        "settings": {"model_dir": str(model_dir), "workers": workers, "threads_per_worker": 1, "clients": clients,
                     "requests_asked": requests, "rounds": len(slices), "max_seconds": max_seconds,
                     "distinct_images": len(images),
                     "mean_image_bytes": round(float(np.mean([len(b) for b, _ in bodies])))},
        "served": {"requests": len(done), "seconds": round(served["seconds"], 3),
                   "images_per_s": round(served_rate, 3), "errors": served["errors"],
                   "latency_ms": {"p50": round(float(np.percentile(latencies_ms, 50)), 1),
                                  "p99": round(float(np.percentile(latencies_ms, 99)), 1),
                                  "mean": round(float(latencies_ms.mean()), 1),
                                  "max": round(float(latencies_ms.max()), 1)},
                   "rss_mib_before": rss_before, "rss_mib_after": rss_after},
        "pool": {"images": len(done), "seconds": round(pool_seconds, 3), "images_per_s": round(pool_rate, 3)},
        "served_vs_pool": round(served_rate / pool_rate, 3),
        "mismatches": int(mismatches),
        "machine": machine_info(),
    }


def loadtest_markdown(report: dict) -> str:
    s, served, pool = report["settings"], report["served"], report["pool"]
    lat, before, after = served["latency_ms"], served["rss_mib_before"], served["rss_mib_after"]
    return "\n".join([
        "# ocrforge serve: load test",
        "",
        f"{served['requests']} requests of {s['distinct_images']} distinct images (mean {s['mean_image_bytes']} "
        f"bytes) from {s['clients']} concurrent clients on loopback; {s['workers']} workers of 1 thread, and "
        f"OCRPool with the same workers on the same images, in the same run, the two alternating over "
        f"{s['rounds']} rounds (`python -m ocrforge.serve.loadtest`).",
        "",
        "| | images/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
        f"| ocrforge serve (HTTP) | {served['images_per_s']:.2f} | {lat['p50']:.0f} | {lat['p99']:.0f} | "
        f"{served['errors']} |",
        f"| OCRPool (in process) | {pool['images_per_s']:.2f} | | | |",
        "",
        f"Served / pooled images per second: **{report['served_vs_pool']:.3f}**; answers that differ from the "
        f"pool's: {report['mismatches']}.",
        "",
        f"Server memory (RSS, MiB; its process + {before['worker_processes']} workers): before "
        f"{before['server']} + {before['workers']} = {before['total']}, after {after['server']} + "
        f"{after['workers']} = {after['total']}.",
        "",
        f"Machine: {report['machine'].get('cpu', '')} ({report['machine'].get('cores', '')} cores).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default="models/export")
    parser.add_argument("--images", default="data/split", help="a split folder (det/test.txt) or a folder of images")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long (served)")
    parser.add_argument("--rounds", type=int, default=3, help="alternate served and pooled slices this many times")
    parser.add_argument("--out", default="reports/serve_bench", help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    report = run_loadtest(args.model_dir, find_images(args.images), workers=args.workers, requests=args.requests,
                          clients=args.clients, max_seconds=args.max_seconds, rounds=args.rounds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(loadtest_markdown(report), encoding="utf-8")
    print(loadtest_markdown(report))
    return 0 if report["served"]["errors"] == 0 and report["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
