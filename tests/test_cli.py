"""The `tutorlib` command: doctor, train (every recipe's loss falls on tiny data), resume, bad input."""

import json

import pytest

from tutorlib.cli import main


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
