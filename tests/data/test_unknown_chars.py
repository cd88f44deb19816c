"""One rule for a label with a character outside the dictionary: the split stage says it will be skipped, and
recognition training and validation skip it (they do not train on the text with the character deleted)."""

from ocrforge.config import load_config, resolve_dict_paths
from ocrforge.data.demo import DemoConfig, generate_demo_dataset
from ocrforge.data.ppocrlabel import load_ppocrlabel
from ocrforge.data.split import format_summary, split_dataset
from ocrforge.params import load_params, section
from ocrforge.registry import DATASETS
from ocrforge.resources import read_dictionary
from ocrforge.recipe import rec_config_from_params


def test_split_and_training_skip_the_same_labels(tmp_path, repo_root):
    generate_demo_dataset(tmp_path / "demo", DemoConfig(num_images=12, seed=7, width=240, height=180))
    labels = load_ppocrlabel(tmp_path / "demo" / "Label.txt")
    chars = [c for c in read_dictionary("ppocr/utils/en_dict.txt", False) if c != "7"]
    dict_file = tmp_path / "no_seven.txt"
    dict_file.write_text("".join(c + "\n" for c in chars), encoding="utf-8")
    data = tmp_path / "split"
    summary = split_dataset(labels, data, seed=1, chars=chars + [" "])
    assert "will be skipped in recognition training and validation" in format_summary(summary)

    params = load_params(repo_root / "params.yaml")
    dictionary = {**section(params, "dictionary"), "character_dict_path": str(dict_file)}
    p = {**section(params, "train_rec"), "box_jitter": 0.15}  # training reads the context crops' label file
    config = rec_config_from_params(load_config(repo_root / p["config"]), p, dictionary, str(data), str(tmp_path / "m"),
                                    str(tmp_path / "live"))
    resolve_dict_paths(config)
    label_files = {mode: config[mode]["dataset"]["label_file_list"][0] for mode in ("Train", "Eval")}
    assert label_files == {"Train": f"{data}/rec/train_context.txt", "Eval": f"{data}/rec/val.txt"}
    for mode, label_file in label_files.items():
        rows = open(label_file, encoding="utf-8").read().splitlines()
        with_seven = [f"{label_file}:{n}" for n, row in enumerate(rows, 1) if "7" in row.split("\t")[1]]
        assert with_seven, "the demo draws codes with a 7 in every split"
        dataset = DATASETS.build(config[mode]["dataset"], global_config=config["Global"], mode=mode, seed=1)
        assert dataset.skipped_unknown_chars == with_seven
        assert len(dataset) == len(rows) - len(with_seven)
        assert not any("7" in line.label for line in dataset.lines)
