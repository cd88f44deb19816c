"""Choosing DBPostProcess's unclip_ratio / box_thresh on validation images (ocrforge/postprocess_search.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ocrforge.config import dump_config, load_config
from ocrforge.data.ppocrlabel import TextLine
from ocrforge.postprocess_search import search_db_postprocess, search_markdown, tune_det_postprocess
from ocrforge.system import trained_settings


def block_map(height: int = 64, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A (1, 1, H, W) probability map that is 1 on rows 28-35, columns 20-75, and its shape row (scale 1)."""
    prob = np.zeros((1, 1, height, width), dtype=np.float32)
    prob[0, 0, 28:36, 20:76] = 1.0
    return prob, np.array([[height, width, 1.0, 1.0]], dtype=np.float32)


def rect(x0, y0, x1, y1) -> TextLine:
    return TextLine(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), "text")


def test_search_scores_every_pair_and_keeps_the_configured_one_on_a_tie():
    maps = [block_map()]
    truth = [[rect(17, 25, 79, 39)]]  # the block unclipped by about 3 px: every ratio below matches it at IoU > 0.5
    post = {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5}
    result = search_db_postprocess(maps, truth, post, unclip_ratios=[1.4, 1.6], box_threshes=[0.5])
    assert [(r["unclip_ratio"], r["box_thresh"]) for r in result["rows"]] == [
        (1.4, 0.5), (1.4, 0.6), (1.5, 0.5), (1.5, 0.6), (1.6, 0.5), (1.6, 0.6)]
    assert all(r["hmean"] == 1.0 for r in result["rows"])
    assert (result["best"]["unclip_ratio"], result["best"]["box_thresh"]) == (1.5, 0.6)
    assert result["changed"] is False


def test_search_moves_off_a_configured_ratio_that_loses_the_boxes():
    maps = [block_map()]
    truth = [[rect(17, 25, 79, 39)]]
    post = {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 8.0}  # boxes far larger than the text: IoU < 0.5
    result = search_db_postprocess(maps, truth, post, unclip_ratios=[1.5, 8.0])
    assert result["configured"]["hmean"] == 0.0
    assert result["best"]["unclip_ratio"] == 1.5 and result["best"]["hmean"] == 1.0
    assert result["changed"] is True


def test_each_epoch_can_be_validated_at_its_best_pair():
    """DBPostProcessGrid + DetGridMetric, as training validates with postprocess_search.every_epoch: the best
    pair of the grid is reported (the configured one loses every box here), and the counters survive the
    merge data-parallel validation does."""
    from ocrforge.metrics.det_metric import DetGridMetric, DetMetric
    from ocrforge.postprocess import DBPostProcessGrid
    from ocrforge.registry import METRICS, POSTPROCESS

    assert POSTPROCESS.get("DBPostProcessGrid") is DBPostProcessGrid and METRICS.get("DetGridMetric") is DetGridMetric
    prob, shape = block_map()
    post = DBPostProcessGrid(thresh=0.3, box_thresh=0.6, unclip_ratio=8.0, unclip_ratios=[1.5, 2.0],
                             box_threshes=[0.5])
    (result,) = post({"maps": prob}, shape)
    assert result["configured"] == (8.0, 0.6)
    assert sorted(result["grid"]) == [(1.5, 0.5), (1.5, 0.6), (2.0, 0.5), (2.0, 0.6), (8.0, 0.5), (8.0, 0.6)]
    assert np.array_equal(result["points"], result["grid"][(8.0, 0.6)])
    box = rect(17, 25, 79, 39).box
    batch = [None, shape, np.asarray([[box]], dtype=np.float32), np.asarray([[False]])]
    plain = DetMetric()
    plain([result], batch)
    assert plain.get_metric()["hmean"] == 0.0  # what a fixed-pair validation would report
    metric, merged = DetGridMetric(), DetGridMetric()
    metric([result], batch)
    merged([result], batch)
    merged.set_accumulated(merged.accumulated())  # what the trainer does with the sums of every process
    for figures in (metric.get_metric(), merged.get_metric()):
        # 1.5 and 2.0 both match; the tie goes to the one nearest the configured pair
        assert figures == {"precision": 1.0, "recall": 1.0, "hmean": 1.0, "unclip_ratio": 2.0, "box_thresh": 0.6,
                           "hmean_configured": 0.0}
    with pytest.raises(ValueError, match="DBPostProcessGrid"):
        DetGridMetric()([{"points": result["points"]}], batch)


def test_the_recipe_validates_over_the_grid_only_when_asked():
    from ocrforge.recipe import validate_over_grid

    def config():
        return {"PostProcess": {"name": "DBPostProcess", "unclip_ratio": 2.0}, "Metric": {"name": "DetMetric"}}

    grid = {"unclip_ratio": [1.5, 2.5], "box_thresh": [0.7], "every_epoch": True}
    on = config()
    validate_over_grid(on, grid)
    assert on == {"PostProcess": {"name": "DBPostProcessGrid", "unclip_ratio": 2.0, "unclip_ratios": [1.5, 2.5],
                                  "box_threshes": [0.7]}, "Metric": {"name": "DetGridMetric"}}
    for other in ({**grid, "every_epoch": False}, {"unclip_ratio": [], "box_thresh": [], "every_epoch": True}):
        off = config()
        validate_over_grid(off, other)
        assert off == config()
    distill = {"PostProcess": {"name": "DistillationDBPostProcess"}, "Metric": {"name": "DistillationMetric"}}
    validate_over_grid(distill, grid)
    assert distill["Metric"]["name"] == "DistillationMetric"


def test_search_refuses_an_empty_validation_set():
    with pytest.raises(ValueError, match="val split is empty"):
        search_db_postprocess([], [], {"unclip_ratio": 1.5})


@pytest.fixture()
def sroie_val(sroie_dir, tmp_path):
    """A det label file of three sroie100 receipts (the split stage's format), relative to ``sroie_dir``."""
    rows = (sroie_dir / "Label.txt").read_text(encoding="utf-8").splitlines()[:3]
    label_file = tmp_path / "val.txt"
    label_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return label_file


def test_tune_writes_the_val_best_pair_beside_the_model_config(trained_models, sroie_dir, sroie_val, tmp_path):
    model_dir = tmp_path / "det"
    shutil.copytree(trained_models / "det", model_dir)
    config = load_config(model_dir / "config.yml")
    config["PostProcess"]["unclip_ratio"] = 3.0  # far too loose for the shipped detector
    dump_config(config, model_dir / "config.yml")
    trained_config = (model_dir / "config.yml").read_text()

    report = tmp_path / "postprocess.json"
    result = tune_det_postprocess(model_dir, sroie_val, sroie_dir, [1.5, 3.0], [], report)

    saved = json.loads(report.read_text())
    assert saved["images"] == 3 and len(saved["rows"]) == 2
    by_ratio = {r["unclip_ratio"]: r["hmean"] for r in saved["rows"]}
    assert by_ratio[1.5] > by_ratio[3.0] + 0.2
    assert saved["best"]["unclip_ratio"] == 1.5 and saved["changed"] is True
    # training's config.yml stays as training wrote it; the choice is the run's postprocess.json, which the
    # system's settings (eval, export) read
    assert (model_dir / "config.yml").read_text() == trained_config
    assert json.loads((model_dir / "postprocess.json").read_text()) == {
        "thresh": config["PostProcess"]["thresh"], "box_thresh": config["PostProcess"]["box_thresh"], "unclip_ratio": 1.5,
        "limit_side_len": 960, "weights": "trained"}
    assert result["post_process"]["unclip_ratio"] == 1.5
    settings = trained_settings(model_dir, load_config(model_dir / "config.yml"))
    assert (settings.det_db_unclip_ratio, settings.det_db_box_thresh) == (1.5, config["PostProcess"]["box_thresh"])
    table = search_markdown(result)
    assert "| **1.5** | **0.6** |" in table and "| 3 | 0.6 |" in table


def test_tune_without_a_grid_leaves_the_config_alone(trained_models, sroie_dir, sroie_val, tmp_path):
    model_dir = tmp_path / "det"
    shutil.copytree(trained_models / "det", model_dir)
    before = (model_dir / "config.yml").read_text()
    result = tune_det_postprocess(model_dir, sroie_val, sroie_dir, [], [], tmp_path / "postprocess.json")
    assert result["searched"] is False and "rows" not in result
    assert (model_dir / "config.yml").read_text() == before
    assert "no search" in search_markdown(result)
    # the configured pair is still written, so every detector run has the file eval and export depend on
    configured = load_config(model_dir / "config.yml")["PostProcess"]
    assert json.loads((model_dir / "postprocess.json").read_text()) == {
        **{k: configured[k] for k in ("thresh", "box_thresh", "unclip_ratio")}, "limit_side_len": 960,
        "weights": "trained"}


def test_the_search_also_chooses_the_side_length_and_the_starting_weights(trained_models, sroie_dir, sroie_val,
                                                                          tmp_path):
    """A fine-tune that broke the detector (its head zeroed: every pixel 0.5) against the shipped weights it
    started from: the search keeps the shipped ones, and the broken ones stay beside them."""
    import paddle

    model_dir = tmp_path / "det"
    shutil.copytree(trained_models / "det", model_dir)
    weights = model_dir / "best_accuracy.pdparams"
    state = paddle.load(str(weights))
    # saved as training saves its best: weights, optimizer state and states.json, one unit
    from ocrforge.engine.checkpoint import load_checkpoint, save_checkpoint
    from ocrforge.models.architectures import build_model

    config = load_config(model_dir / "config.yml")
    model = build_model(config["Architecture"])
    model.set_state_dict({k: paddle.zeros_like(v) if k.startswith("head.") else v for k, v in state.items()})
    save_checkpoint(str(model_dir), "best_accuracy", model,
                    paddle.optimizer.Adam(parameters=model.parameters()), {"state": {"epoch": 2}})
    broken = weights.read_bytes()

    result = tune_det_postprocess(model_dir, sroie_val, sroie_dir, [1.5], [], tmp_path / "postprocess.json",
                                  side_lens=[640], compare_pretrained=True)

    combos = {(r["weights"], r["limit_side_len"]) for r in result["rows"]}
    assert combos == {("trained", 640), ("trained", 960), ("pretrained", 640), ("pretrained", 960)}
    by_combo = {(r["weights"], r["limit_side_len"]): r["hmean"] for r in result["rows"] if r["unclip_ratio"] == 1.5
                and r["box_thresh"] == 0.6}
    assert by_combo[("pretrained", 960)] > by_combo[("trained", 960)] + 0.5
    assert by_combo[("pretrained", 640)] != by_combo[("pretrained", 960)]  # receipts are larger than 640 px
    best = result["best"]
    assert best["weights"] == result["weights"] == "pretrained"
    assert (model_dir / "best_trained.pdparams").read_bytes() == broken
    # the trained checkpoint is kept whole; best_accuracy is a whole checkpoint of the starting weights, without
    # the trained run's optimizer state
    assert (model_dir / "best_trained.pdopt").is_file() and (model_dir / "best_trained.states.json").is_file()
    assert not (model_dir / "best_accuracy.pdopt").exists()
    states = load_checkpoint(str(model_dir), "best_accuracy", build_model(config["Architecture"]))
    assert states["weights"] == "pretrained" and "pdopt" not in states["sha256"] and states["state"]["epoch"] == 2
    assert load_checkpoint(str(model_dir), "best_trained", model)["state"]["epoch"] == 2
    restored = paddle.load(str(weights))
    # the shipped weights again (the threshold-map branch, trained but not shipped, starts random each build)
    assert restored.keys() == state.keys()
    assert all(np.array_equal(restored[k].numpy(), v.numpy()) for k, v in state.items() if not k.startswith("head.thresh"))
    chosen = json.loads((model_dir / "postprocess.json").read_text())
    assert chosen["weights"] == "pretrained" and chosen["limit_side_len"] == best["limit_side_len"]
    settings = trained_settings(model_dir, load_config(model_dir / "config.yml"))
    assert settings.det_limit_side_len == best["limit_side_len"]
    table = search_markdown(result)
    assert "| trained | 640 |" in table and "best_trained.pdparams" in table
    assert f"| **pretrained** | **{best['limit_side_len']}** |" in table


def test_the_report_shows_the_pair_the_search_prefers_among_ties():
    from ocrforge.postprocess_search import search_markdown

    def row(weights, side, unclip, thresh, hmean):
        return {"weights": weights, "limit_side_len": side, "unclip_ratio": unclip, "box_thresh": thresh,
                "precision": hmean, "recall": hmean, "hmean": hmean}

    rows = [row(w, side, u, 0.6, 1.0 if w == "trained" else 0.9) for w in ("trained", "pretrained")
            for side in (960, 1280) for u in (1.3, 2.0, 3.0)]
    configured = rows[1]  # trained, 960, 2.0 / 0.6: every trained pair ties at 1.0
    result = {"searched": True, "images": 4, "rows": rows, "configured": configured, "best": configured,
              "post_process": {"unclip_ratio": 2.0, "box_thresh": 0.6}}
    table = search_markdown(result).split("Every pair")[0]
    assert "| trained | 1280 | 2 | 0.6 | 1.0000 | 1.0000 | 1.0000 |" in table  # not the first tied pair, 1.3
    assert "| **trained** | **960** | **2** | **0.6** |" in table
    assert "| pretrained | 960 | 2 | 0.6 |" in table
