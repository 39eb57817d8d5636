"""tutorlib.models: shapes, clear errors, the bundled MiniLM, the tiny GPT."""

import pytest
import torch

from tutorlib.data import HubUnavailable
from tutorlib.models import MLP, ByteTokenizer, GPTConfig, MiniLMClassifier, SmallCNN, TinyGPT, load_tokenizer, mean_pool


def test_mlp_and_cnn_shapes_and_errors():
    assert MLP(64, [32], 10)(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, 64\)"):
        MLP(64, [32], 10)(torch.zeros(5, 32))
    assert SmallCNN()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="unsqueeze"):
        SmallCNN()(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError):
        MLP(64, [0], 10)


def test_minilm_loads_offline_and_embeds_meaningfully():
    tok = load_tokenizer()
    model = MiniLMClassifier(2).eval()
    batch = tok(["The hotel room was spotless and quiet.", "The room was clean and calm.",
                 "My flight was cancelled twice."], return_tensors="pt", padding=True)
    with torch.no_grad():
        emb = model.embed(batch["input_ids"], batch["attention_mask"])
    emb = torch.nn.functional.normalize(emb, dim=1)
    sim = emb @ emb.T
    # Real pretrained weights: paraphrases are closer than unrelated sentences.
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sum(p.numel() for p in model.encoder.parameters()) == pytest.approx(22.7e6, rel=0.01)


def test_minilm_unknown_model_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="bundled MiniLM"):
        load_tokenizer("someone/not-here")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_tokenizer(tmp_path)


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert mean_pool(h, torch.tensor([[1, 1, 0]])).item() == 2.0


def test_tiny_gpt_learns_a_pattern_and_rejects_bad_ids():
    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, d_model=32))
    seq = torch.tensor([tok.encode("abcabcabcabcabcab")])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = model.loss(seq).item()
    for _ in range(60):
        opt.zero_grad()
        loss = model.loss(seq)
        loss.backward()
        opt.step()
    assert loss.item() < first / 4
    out = model.generate(torch.tensor([tok.encode("abc")]), 6, temperature=0)
    assert tok.decode(out[0]) == "abcabcabc"
    with pytest.raises(ValueError, match="token ids"):
        model(torch.tensor([[500]]))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))
