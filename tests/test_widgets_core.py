"""Core widgets: the dashboard degrades to printing outside Jupyter; the playground really trains."""

import ipywidgets as w

from tutorlib.data import load_digits
from tutorlib.models import MLP
from tutorlib.train import Trainer
from tutorlib.widgets import TrainingDashboard, run_playground, training_playground


def test_dashboard_prints_outside_notebook(capsys):
    Trainer(MLP(64, [8], 10), progress=False, log=False, callbacks=[TrainingDashboard()]).fit(
        load_digits("train", limit=64), load_digits("val", limit=32), epochs=2)
    out = capsys.readouterr().out
    assert "epoch 1" in out and "epoch 2" in out and "val_accuracy" in out


def test_dashboard_widgets_update_during_fit():
    dash = TrainingDashboard(force_widgets=True, update_every=1)
    Trainer(MLP(64, [8], 10), progress=False, log=False, callbacks=[dash]).fit(
        load_digits("train", limit=64), load_digits("val", limit=32), epochs=2)
    assert isinstance(dash.box, w.VBox)
    assert dash.bar.value == dash.bar.max == 2  # 64 examples / batch 64 = 1 step per epoch
    assert "epoch 2 done" in dash.header.value and "val_accuracy" in dash.header.value


def test_playground_learning_rate_changes_the_outcome():
    good = run_playground(hidden=32, lr=1e-2, epochs=2, limit=256)
    tiny = run_playground(hidden=32, lr=1e-5, epochs=2, limit=256)
    assert good["val_accuracy"] > tiny["val_accuracy"] + 0.2


def test_playground_button_runs_and_reports():
    box = training_playground(limit=64)
    status = box.children[2]
    before = status.value
    box.run()
    assert status.value != before and "val accuracy" in status.value
