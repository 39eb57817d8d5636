"""Ensembles (vs scikit-learn's own voting/stacking) and adversarial attacks/training."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tutorlib.data import load_digits
from tutorlib.frontiers import (accuracy_under_attack, adversarial_step_fn, average_probs, fgsm, fit_ensemble,
                                majority_vote, pgd)
from tutorlib.train import Trainer


def test_average_probs_equals_sklearn_soft_voting():
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_digits("train", flat=True, limit=300).tensors
    xt, _ = load_digits("test", flat=True, limit=100).tensors
    ests = [("lr", LogisticRegression(max_iter=300)), ("nb", GaussianNB()), ("dt", DecisionTreeClassifier(random_state=0))]
    vote = VotingClassifier(ests, voting="soft").fit(x.numpy(), y.numpy())
    ours = average_probs([e.predict_proba(xt.numpy()) for e in vote.estimators_])
    np.testing.assert_allclose(ours, vote.predict_proba(xt.numpy()), atol=1e-10)
    hard = VotingClassifier(ests, voting="hard").fit(x.numpy(), y.numpy())
    ours_hard = majority_vote([e.predict_proba(xt.numpy()) for e in hard.estimators_])
    assert (ours_hard == hard.predict(xt.numpy())).mean() > 0.97  # sklearn breaks ties by label order too


def test_ensembles_are_at_least_as_good_as_the_best_single_model():
    x, y = load_digits("train", flat=True, limit=300).tensors
    xt, yt = load_digits("test", flat=True).tensors
    r = fit_ensemble(x.numpy(), y.numpy(), xt.numpy(), yt.numpy(), cv=3)
    singles = [r[n] for n in r.probs]
    assert r["average"] > np.mean(singles) and r["stacking"] > np.mean(singles)  # better than a typical member
    assert max(r["average"], r["stacking"]) >= r[r.best_single] - 0.03  # and close to (or above) the best one
    assert all(0.5 < r[n] <= 1 for n in r)


def test_fgsm_closed_form_on_a_linear_model():
    m = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]]))
    x = torch.full((1, 3), 0.5)
    # d CE / dx for label 0 = (softmax - onehot) @ W ; its sign is sign(W[1] - W[0]) since p1 - 1 + ... collapses
    adv = fgsm(m, x, torch.tensor([0]), 0.1)
    expected = (x + 0.1 * torch.sign(m.weight[1] - m.weight[0])).detach()
    torch.testing.assert_close(adv, expected)


def test_pgd_stays_in_the_ball_and_beats_fgsm():
    torch.manual_seed(0)
    train = load_digits("train", limit=400)
    from tutorlib.models import SmallCNN

    model = SmallCNN(width=16)
    Trainer(model, lr=5e-3, batch_size=32, progress=False, log=False).fit(train, epochs=4)
    model.eval()
    x, y = load_digits("test", limit=120).tensors
    adv = pgd(model, x, y, eps=0.1, steps=10)
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    clean = accuracy_under_attack(model, x, y, "none")
    f = accuracy_under_attack(model, x, y, "fgsm", eps=0.1)
    p = accuracy_under_attack(model, x, y, "pgd", eps=0.1, steps=10)
    assert clean > 0.7 and p <= f + 0.02 and p < clean - 0.2
    assert pgd(model, x, y, eps=0.1, alpha=0.1, steps=1, random_start=False).equal(fgsm(model, x, y, 0.1))


def test_adversarial_training_improves_accuracy_under_attack():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 10, generator=g)
    w = torch.randn(10, generator=g)
    y = (x @ w > 0).long()
    accs = {}
    for name, step in [("std", None), ("adv", adversarial_step_fn(0.3, "pgd", mix=1.0, steps=5, clamp=None))]:
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
        Trainer(m, lr=1e-2, batch_size=32, step_fn=step, progress=False, log=False).fit(TensorDataset(x, y), epochs=8)
        accs[name] = accuracy_under_attack(m, x, y, "pgd", eps=0.3, clamp=None, steps=10)
    assert accs["adv"] > accs["std"] + 0.05


def test_bad_input_is_explained():
    m = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="eps"):
        fgsm(m, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), -1)
    with pytest.raises(TypeError, match="float"):
        fgsm(m, torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="attack"):
        accuracy_under_attack(m, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), "cw")
    with pytest.raises(ValueError, match="same"):
        average_probs([np.zeros((2, 3)), np.zeros((3, 3))])
    with pytest.raises(ValueError, match="flatten"):
        fit_ensemble(np.zeros((4, 2, 2)), np.zeros(4), np.zeros((2, 4)), np.zeros(2))
