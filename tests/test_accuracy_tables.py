"""The accuracy benchmark's tables: a model README's rows are computed from every run of docs/accuracy.csv."""

from __future__ import annotations

import sys
from pathlib import Path

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import accuracy
from sample_sets import write_generated_block


def run(model: str, category: str, seed: int, image: float, flagged: float, seconds: float) -> dict:
    return {"model": model, "category": category, "seed": seed, "image_auroc": image, "pixel_auroc": image - 0.1,
            "false_alarm_rate": flagged, "caught_at_threshold": 0.5, "train_s": seconds}


def test_a_model_readme_table_gives_the_mean_the_lowest_seed_and_the_fit_seconds_of_that_model_only() -> None:
    rows = [run("EGBAD", "stone", 0, 0.80, 0.0, 250.4), run("EGBAD", "stone", 1, 0.70, 0.10, 300.6),
            run("GANomaly", "stone", 0, 0.99, 0.0, 100.0), run("EGBAD", "mesh", 0, 0.95, 0.05, 280.0)]
    table = accuracy.model_table(rows, "EGBAD", ["weave", "stone", "mesh"]).splitlines()
    assert table[2:] == [
        "| stone | 2 | 0.750 (0.700) | 0.650 | 5 % | 50 % | 250-301 |",
        "| mesh | 1 | 0.950 (0.950) | 0.850 | 5 % | 50 % | 280-280 |",
    ]
    assert len(table[0].split("|")) == len(table[2].split("|"))


def test_a_redrawn_readme_table_leaves_the_rest_of_the_readme_as_it_was(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# EGBAD\n\nBefore.\n\n<!-- accuracy.py: begin -->\nold table\n<!-- accuracy.py: end -->\n\nAfter.\n")
    table = accuracy.model_table([run("EGBAD", "stone", 0, 0.8, 0.0, 250.0)], "EGBAD", ["stone"])
    write_generated_block(readme, "accuracy.py", table, "EGBAD")
    assert readme.read_text() == (
        f"# EGBAD\n\nBefore.\n\n<!-- accuracy.py: begin -->\n{table}\n<!-- accuracy.py: end -->\n\nAfter.\n"
    )


def test_a_comparison_shows_only_the_runs_rerun_since_the_revision_on_the_same_seeds() -> None:
    columns = ("pixel_aupro", "caught_at_1pct_false_alarms", "test_images_per_s")
    before = [{**run("EGBAD", "stone", s, 0.80 + 0.1 * s, 0.0, 300.0), **dict.fromkeys(columns, 1.0), "made_by": "then"}
              for s in (0, 1)]
    before.append({**run("EGBAD", "mesh", 0, 0.95, 0.0, 280.0), **dict.fromkeys(columns, 1.0), "made_by": "then"})
    after = [{**run("EGBAD", "stone", s, 0.70 + 0.1 * s, 0.05, 400.0), **dict.fromkeys(columns, 1.0), "made_by": "now"}
             for s in (0, 1)]
    after.append(before[2])  # mesh not rerun
    table = accuracy.compare_table(before, after).splitlines()
    assert len(table) == 3
    assert table[2].startswith("| stone | EGBAD | 0, 1 | 0.850 (0.800-0.900) -> 0.750 (0.700-0.800) | 0.75 -> 0.65 |")
    assert "| 0.00 -> 0.05 |" in table[2] and "| 300 -> 400 |" in table[2]
    assert accuracy.compare_table(before, before).startswith("No run")


def test_the_tables_keep_one_order_of_models_and_categories_whichever_a_run_trained() -> None:
    earlier = [run("GANomaly", "weave", 0, 0.99, 0.0, 200.0), run("AnoGAN", "mesh", 0, 0.97, 0.0, 200.0)]
    fresh = [run("AnoGAN", "weave", 0, 0.98, 0.0, 500.0), run("EGBAD", "weave", 0, 0.98, 0.0, 600.0),
             run(accuracy.BASELINE, "stone", 0, 0.5, 0.5, 300.0)]
    models, categories = accuracy.table_order([*earlier, *fresh], ["AnoGAN", "EGBAD"], ["mesh"])
    assert models == ["GANomaly", "EGBAD", "AnoGAN"]
    assert categories == ["weave", "stone", "mesh"]  # flange and label have no rows
    filled = [{**dict.fromkeys(accuracy.COLUMNS, 0.5), **row} for row in [*earlier, *fresh]]
    table = accuracy.summarise(filled, models, categories).splitlines()
    assert [line.split(" | ")[:2] for line in table[2:]] == [
        ["| weave", "GANomaly"], ["| weave", "EGBAD"], ["| weave", "AnoGAN"], ["| stone", "anomalib Ganomaly"],
        ["| mesh", "AnoGAN"],
    ]
