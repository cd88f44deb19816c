"""Real `dvc repro` runs of the pipeline in a temporary copy of the repository."""

import json

import pytest

from pipeline_copy import copy_repo, dvc


@pytest.mark.slow
def test_dvc_repro_split_then_nothing_to_do(tmp_path):
    repo = copy_repo(tmp_path, {"demo.num_images": 10, "demo.width": 240, "demo.height": 180})
    first = dvc(repo, "repro", "split")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Running stage 'demo_data'" in first.stdout and "Running stage 'split'" in first.stdout
    metrics = json.loads((repo / "reports" / "split.json").read_text())
    assert {s: c["images"] for s, c in metrics["splits"].items()} == {"train": 6, "val": 2, "test": 2}
    assert (repo / "data" / "split" / "det" / "train.txt").is_file()

    again = dvc(repo, "repro", "split")
    assert again.returncode == 0, again.stderr
    assert "Running stage" not in again.stdout

    params = (repo / "params.yaml").read_text().replace("seed: 42", "seed: 43")
    (repo / "params.yaml").write_text(params)
    changed = dvc(repo, "repro", "split")
    assert "Running stage 'split'" in changed.stdout and "Running stage 'demo_data'" not in changed.stdout
