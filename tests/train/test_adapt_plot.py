"""python -m train.adapt.plot: folds merged over their signers, one PNG."""

from __future__ import annotations

import json

import pytest

from train.adapt.plot import curves, main, merge


def report(signer: str, base: float, head: float) -> dict:
    by_k = {"0": {"accuracy": {"none": base}}, "2": {"accuracy": {"none": base, "head": head}}}
    return {"signers": {signer: {"by_k": by_k}}, "methods": ["head"],
            "mean": {"0": {"none": base}, "2": {"none": base, "head": head}}}


def test_folds_merge_into_the_mean_over_their_signers():
    merged = merge([report("signer-01", 0.6, 0.9), report("signer-02", 0.8, 1.0)])
    assert sorted(merged["signers"]) == ["signer-01", "signer-02"]
    assert merged["mean"]["0"]["none"] == pytest.approx(0.7) and merged["mean"]["2"]["head"] == pytest.approx(0.95)
    ks, values = curves(merged)["head"]
    assert ks == [0, 2] and values == pytest.approx([70.0, 95.0])


def test_the_plot_is_written_and_bad_input_is_one_line(tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(report("signer-01", 0.6, 0.9)))
    second.write_text(json.dumps(report("signer-02", 0.8, 1.0)))
    out = tmp_path / "plot.png"
    assert main([f"{first}+{second}", str(first), "--out", str(out), "--titles", "folds,one", "--table"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "| folds | head | 70.0 | 95.0 |" in printed and "| one | head | 60.0 | 90.0 |" in printed
    assert main([str(tmp_path / "missing.json"), "--out", str(out)]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main([str(first), "--out", str(out), "--titles", "a,b"]) == 2
