"""A benchmark report as JSON (DVC metrics) and markdown."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _memory_cell(memory: dict) -> str:
    alone = memory.get("alone")
    return f"{alone['peak_rss_mb']} (+{alone['load_mb']} load)" if alone else f"{memory['shared_process_peak_rss_mb']}"


def _cell(figure: dict) -> str:
    return f"{figure['median']:.2f} ({figure['p90']:.2f})"


def write_reports(report: dict, json_path: str | os.PathLike, markdown_path: str | os.PathLike) -> None:
    """``report`` as JSON (DVC metrics) and as a markdown table."""
    json_path, markdown_path = Path(json_path), Path(markdown_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(benchmark_markdown(report), encoding="utf-8")


def benchmark_markdown(report: dict) -> str:
    m, d, s = report["machine"], report["data"], report["settings"]
    speed_rows, accuracy_rows = [], []
    for name, e in report["engines"].items():
        sp, up = e["speed"], e.get("speedup_vs_paddleocr", {})
        ratio = up.get("e2e_images_per_s")
        speed_rows.append(
            f"| {name} | {_cell(sp['det_images_per_s'])} | {_cell(sp['rec_crops_per_s_bs1'])} | "
            f"{_cell(sp['rec_crops_per_s_batch'])} | {_cell(sp['e2e_images_per_s'])} | "
            f"{_cell(sp['e2e_ms_per_image'])} | {'' if ratio is None else f'{ratio:.2f}x'} | "
            f"{_memory_cell(e['memory'])} |")
        a = e["accuracy"]
        accuracy_rows.append(f"| {name} | {a['e2e']['precision']:.4f} | {a['e2e']['recall']:.4f} | "
                             f"{a['e2e']['hmean']:.4f} | {a['e2e']['full_text_acc']:.4f} | {a['rec']['acc']:.4f} | "
                             f"{a['rec']['norm_edit_dis']:.4f} |")
    labels = "\n".join(f"- **{name}**: {e['label']}" for name, e in report["engines"].items())
    model_rows = "\n".join(f"| {kind} | {f['parameters']:,} | {f['bn_statistics']:,} | {f['params_file_mb']} |"
                           for kind, f in report["models"].items())
    reads_line = "".join(
        f"\n{name} and PaddleOCR read {reads['identical']} of {reads['images']} images identically "
        f"(same texts, boxes within 1 px).\n"
        for name in ("ocrforge", "ocrforge_paddle", "ocrforge_pool")
        if (reads := report.get(f"{name}_vs_paddleocr_reads")))
    limit = report.get("limit")
    limit_text = ""
    if limit:
        peak = limit["matmul_peak"]
        model_lines = "\n".join(
            f"| {name} | {m['det_gflops_per_image']:.2f} ({m['det_resize']['limit_type']} side "
            f"{m['det_resize']['limit_side_len']}) | {m['rec_gflops_per_crop']:.3f} | {m['rec_gflops_48x320']:.3f} |"
            for name, m in limit["models"].items())
        engine_lines = "\n".join(
            f"| {name} | {e['models']} | {e['det']['gflops']:.1f} | {100 * e['det']['fraction_of_peak']:.1f}% | "
            f"{e['rec']['gflops']:.1f} | {100 * e['rec']['fraction_of_peak']:.1f}% |"
            for name, e in limit["engines"].items())
        limit_text = f"""
## Distance to the machine's limit

This CPU's float32 matmul peak at {peak['threads']} thread(s): {peak['gflops']:.1f} GFLOP/s ({peak['backend']};
{', '.join(f'{k} {v:.1f}' for k, v in peak['by_backend'].items())}). A FLOP is one multiply or add.

| models | det GFLOP per image (resize) | rec GFLOP per crop (its own width) | rec GFLOP at 48x320 |
|---|---|---|---|
{model_lines}

| engine | models | det GFLOP/s | det share of peak | rec GFLOP/s (batch 1) | rec share of peak |
|---|---|---|---|---|---|
{engine_lines}
"""
    return f"""# Benchmark

Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gb']} GB; paddlepaddle
{m['paddlepaddle']}, paddleocr {m['paddleocr']}, onnxruntime {m['onnxruntime']}; {s['threads']} thread(s) per engine.

Data: {d['source']}: {d['images']} images, {d['crops']} ground-truth crops; {s['warmup']} warm-up and
{s['repeats']} timed passes, engines interleaved. Figures are median (p90, at the slow end).

{labels}

## Speed

| engine | det images/s | rec crops/s, batch 1 | rec crops/s, batch {s['rec_batch_size']} | end-to-end images/s | ms/image | vs PaddleOCR | peak RSS MB |
|---|---|---|---|---|---|---|---|
{chr(10).join(speed_rows)}
{reads_line}
## Accuracy (case {'sensitive' if s['case_sensitive'] else 'insensitive'})

| engine | e2e precision | e2e recall | e2e hmean | full-text acc | rec acc (GT crops) | rec norm_edit_dis |
|---|---|---|---|---|---|---|
{chr(10).join(accuracy_rows)}

rapidocr runs its own PP-OCRv4 models and rapidocr_v6 the PP-OCRv6 small ones (off the shelf, their own
dictionaries); the others run our export.

## Models

| model | parameters | BN statistics | inference.pdiparams MB |
|---|---|---|---|
{model_rows}
{limit_text}
Memory: {report['memory_note']}. Process peak: {report['process_peak_rss_mb']} MB.
"""
