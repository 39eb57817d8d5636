"""The `tutorlib` command: doctor, train (every recipe's loss falls on tiny data), resume, bad input."""

import json

import pytest

from pathlib import Path

from tutorlib.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("recipe,limit,epochs", [("digits-mlp", 256, 3), ("digits-cnn", 256, 3), ("reviews-minilm", 48, 2)])
def test_every_recipe_trains_and_writes_outputs(tmp_path, recipe, limit, epochs, capsys):
    out = tmp_path / recipe
    lr = ["--lr", "1e-4"] if recipe == "reviews-minilm" else []
    code = main(["train", recipe, "--epochs", str(epochs), "--limit", str(limit), "--out", str(out), "--quiet",
                 "--batch-size", "16", *lr])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    losses = [e["train_loss"] for e in metrics["history"]["epochs"]]
    assert losses[-1] < losses[0], losses
    assert (out / "model.safetensors").exists() and (out / "checkpoints" / "latest").exists()
    assert "done in" in capsys.readouterr().out


def test_train_resume_continues_and_refuses_to_clobber(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "digits-mlp", "--limit", "128", "--out", str(out), "--quiet"]
    assert main(base + ["--epochs", "1"]) == 0
    assert main(base + ["--epochs", "2"]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main(base + ["--epochs", "2", "--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["history"]["epochs"]] == [0, 1]
    assert main(["train", "digits-mlp", "--out", str(tmp_path / "none"), "--resume"]) == 2


def test_unknown_recipe_and_bad_device(capsys):
    with pytest.raises(SystemExit):
        main(["train", "imagenet-vit"])
    assert "invalid choice" in capsys.readouterr().err
    assert main(["train", "digits-mlp", "--device", "quantum", "--limit", "8"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_doctor_exit_code(capsys):
    assert main(["doctor"]) == 0
    assert "all checks passed" in capsys.readouterr().out


def test_bench_lists_scripts(repo_root, capsys):
    assert main(["bench", "--root", str(repo_root)]) == 0
    assert "trainer_overhead" in capsys.readouterr().out


def test_every_documented_command_is_wired(capsys):
    """The README's commands exist on the one `tutorlib` entry point and print their usage."""
    for command in ("doctor", "train", "finetune", "predict", "grade", "build-exercises", "bench"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert f"tutorlib {command}" in capsys.readouterr().out


def _run_without_torch(code: str) -> tuple[int, str, bool]:
    """Run ``code`` (which sets ``rc``) in a fresh interpreter; return rc, stderr and whether torch got imported."""
    import subprocess
    import sys

    script = f"import sys\n{code}\nprint('TORCH', 'torch' in sys.modules)\nsys.exit(rc)"
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stderr, "TORCH True" in p.stdout


def test_usage_and_file_errors_answer_before_torch_is_imported(tmp_path):
    # the measure of "answers at once" that does not depend on the machine's speed: torch is never imported
    cases = [
        (["train", "no-such-recipe"], "invalid choice"),
        (["train", "digits-mlp", "--lr", "0"], "must be a number greater than 0"),
        (["finetune", "--data", str(tmp_path / "missing.csv")], "does not exist"),
        (["finetune", "--data", "x.csv", "--epochs", "0"], "at least 1"),
        (["predict", "--model", "runs/x"], "nothing to classify"),
        (["generate", "--data", str(tmp_path / "missing.jsonl")], "does not exist"),
        (["generate"], "exactly one of them"),
        (["train", "digits-mlp", "--resume", "--out", str(tmp_path / "none")], "does not exist"),
        (["grade", "--jobs", "0", "x.ipynb"], "at least 1"),
        (["grade", "x.ipynb", "--cpu-limit", "0"], "must be a number greater than 0"),
    ]
    for argv, message in cases:
        code = ("from tutorlib.cli import main\n"
                f"try:\n    rc = main({argv!r})\nexcept SystemExit as exc:\n    rc = exc.code")
        rc, err, torch_loaded = _run_without_torch(code)
        assert rc == 2 and message in err, (argv, rc, err)
        assert not torch_loaded, f"tutorlib {' '.join(argv)} imported torch before answering"


def test_cli_precisions_match_the_trainer():
    from tutorlib.cli import PRECISIONS
    from tutorlib.finetune.options import TASK_NAMES
    from tutorlib.finetune.run import TASKS
    from tutorlib.train import PRECISIONS as TRAINER_PRECISIONS

    assert PRECISIONS == TRAINER_PRECISIONS
    assert set(TASK_NAMES) == set(TASKS)


def test_one_error_policy_for_every_subcommand(capsys, monkeypatch):
    import tutorlib.finetune.run as run
    from tutorlib.cli import main

    def broken(config):
        raise OSError("disk full")

    monkeypatch.setattr(run, "finetune", broken)
    data = ROOT / "tutorlib" / "data" / "reviews.csv"
    assert main(["finetune", "--data", str(data), "--out", "/tmp/never"]) == 2
    assert capsys.readouterr().err.strip() == "error: disk full"
    monkeypatch.setenv("TUTORLIB_DEBUG", "1")
    with pytest.raises(OSError):
        main(["finetune", "--data", str(data), "--out", "/tmp/never"])
