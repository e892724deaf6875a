"""Specs: manifest TOML, -r requirements and requirements files."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelferry.errors import SpecError
from wheelferry.spec import expand_requirement_args, load_spec, spec_from_requirements


def test_load_spec(tmp_path: Path) -> None:
    p = tmp_path / "tf.toml"
    p.write_text('name = "tf-inference"\nrequirements = ["tensorflow==2.20.0"]\n'
                 'targets = ["linux-x86_64:3.11:gpu"]\nexclude = ["TensorBoard"]\n'
                 '[index]\nurl = "https://mirror.example/simple"\n'
                 '[install]\nsmoke = ["python -c \'import tensorflow\'"]\n')
    s = load_spec(p)
    assert s.name == "tf-inference" and s.exclude == ("tensorboard",)
    assert s.index_url == "https://mirror.example/simple" and s.smoke


@pytest.mark.parametrize("body,match", [
    ("name = [", "not valid TOML"),
    ('requirements = ["numpy>>1"]', "not a valid requirement"),
    ('requirements = []', "empty"),
    ('requirements = ["x"]\nfoo = 1', "unknown key"),
    ('requirements = "x"', "list of strings"),
    ('requirements = ["x @ https://mirror.example/x.whl"]', "direct URL"),
])
def test_bad_specs(tmp_path: Path, body: str, match: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(SpecError, match=match) as exc:
        load_spec(p)
    assert exc.value.exit_code == 2


def test_requirements_file_and_plain_requirements(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0  # pinned\n")
    req = tmp_path / "requirements.txt"
    req.write_text("-r base.txt\n\n# comment\nnumpy>=1.26 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    assert expand_requirement_args([str(req), "attrs"]) == ["six==1.16.0", "numpy>=1.26", "attrs"]


def test_missing_requirements_file_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        expand_requirement_args([str(tmp_path / "nope.txt")])


def test_spec_name_from_first_requirement() -> None:
    assert spec_from_requirements(["TensorFlow==2.20.0"]).name == "tensorflow"
