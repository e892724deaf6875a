"""Licences of real wheels: recorded METADATA of the TensorFlow sets, recorded licence files, the policy on them."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.licenses import canonicalize_license_expression
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from wheelferry.coremetadata import read_core_metadata
from wheelferry.errors import PolicyFileError
from wheelferry.offline.audit import read_metadata
from wheelferry.offline.licences import licence_of, licence_of_wheel
from wheelferry.offline.policy import (
    PackageFacts,
    canonical_spdx,
    evaluate,
    parse_denied,
    policy_from_text,
    spdx_ids,
    spdx_satisfied,
)

DATA = Path(__file__).parent / "data"
INDEX = DATA / "index"
NVIDIA = "LicenseRef-NVIDIA-Proprietary"

# Every project of the recorded TensorFlow CPU and GPU sets -> the SPDX result of each of its
# recorded wheels from METADATA alone (a set when releases differ).  None: the METADATA names no
# single licence, so the licence file decides (see RECORDED_WHEELS).
EXPECTED: dict[str, set[str | None]] = {
    "absl-py": {"Apache-2.0"}, "astunparse": {None}, "certifi": {"MPL-2.0"}, "cffi": {"MIT", "MIT-0"},
    "charset-normalizer": {"MIT"}, "cryptography": {"Apache-2.0 OR BSD-3-Clause"}, "flatbuffers": {"Apache-2.0"},
    "gast": {"BSD-3-Clause"}, "google-auth": {"Apache-2.0"}, "google-auth-oauthlib": {"Apache-2.0"},
    "google-pasta": {"Apache-2.0"}, "grpcio": {"Apache-2.0"}, "h5py": {"BSD-3-Clause"},
    "idna": {"BSD-3-Clause"}, "importlib-metadata": {"Apache-2.0"}, "keras": {"Apache-2.0"},
    "keras-preprocessing": {"MIT"}, "libclang": {"Apache-2.0"}, "markdown": {"BSD-3-Clause"},
    "markdown-it-py": {"MIT"}, "markupsafe": {"BSD-3-Clause"}, "mdurl": {"MIT"}, "ml-dtypes": {"Apache-2.0"},
    "namex": {None}, "numpy": {"BSD-3-Clause", "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0"},
    "oauthlib": {"BSD-3-Clause"}, "opt-einsum": {"MIT"}, "optree": {"Apache-2.0"},
    "packaging": {"Apache-2.0 OR BSD-2-Clause"}, "pillow": {"MIT-CMU"}, "protobuf": {"BSD-3-Clause"},
    "pyasn1": {"BSD-2-Clause"}, "pyasn1-modules": {None}, "pycparser": {"BSD-3-Clause"},
    "pygments": {"BSD-2-Clause"}, "requests": {"Apache-2.0"}, "requests-oauthlib": {"ISC"}, "rich": {"MIT"},
    "setuptools": {"MIT"}, "six": {"MIT"}, "tensorboard": {"Apache-2.0"}, "tensorboard-data-server": {"Apache-2.0"},
    "tensorboard-plugin-wit": {"Apache-2.0"}, "tensorflow": {"Apache-2.0"}, "tensorflow-cpu-aws": {"Apache-2.0"},
    "tensorflow-estimator": {"Apache-2.0"}, "tensorflow-intel": {"Apache-2.0"},
    "tensorflow-io-gcs-filesystem": {"Apache-2.0"}, "tensorflow-macos": {"Apache-2.0"},
    "tensorrt-bindings": {NVIDIA}, "termcolor": {"MIT"}, "typing-extensions": {"PSF-2.0"}, "urllib3": {"MIT"},
    "werkzeug": {"BSD-3-Clause"}, "wheel": {"MIT"}, "wrapt": {"BSD-2-Clause", None}, "zipp": {"MIT"},
}


def _recorded() -> list[Path]:
    return sorted(INDEX.glob("*/*.metadata"))


def test_every_recorded_wheel_gets_its_spdx_result() -> None:
    got: dict[str, set[str | None]] = {}
    for path in _recorded():
        got.setdefault(path.parent.name, set()).add(licence_of(path.read_bytes()).spdx)
    nvidia = {k for k in got if k.startswith("nvidia-")}
    assert len(nvidia) == 12 and all(got.pop(k) == {NVIDIA} for k in nvidia)
    assert got == EXPECTED


@pytest.mark.parametrize(("project", "fragment", "spdx", "source"), [
    ("markdown", "markdown-3.9-", "BSD-3-Clause", "License-Expression"),
    ("gast", "gast-0.4.0-", "BSD-3-Clause", "License-name"),
    ("protobuf", "protobuf-3.19.6-py2", "BSD-3-Clause", "License-name"),
    ("numpy", "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64", "BSD-3-Clause", "License"),
    ("nvidia-cublas-cu12", "12.2.5.6-py3-none-manylinux1", NVIDIA, "License-name"),
    ("nvidia-cuda-cupti-cu12", "12.9.79-py3-none-manylinux_2_25_x86_64", NVIDIA, "License"),
    ("nvidia-cublas-cu12", "12.9.3.13-py3-none-manylinux_2_27_x86_64", NVIDIA, "License-Expression"),
])
def test_named_wheels_and_their_evidence(project: str, fragment: str, spdx: str, source: str) -> None:
    (path,) = [p for p in (INDEX / project).glob("*.metadata") if fragment in p.name]
    lic = licence_of(path.read_bytes())
    assert (lic.spdx, lic.source) == (spdx, source) and lic.evidence


def _wheel(tmp_path: Path, recorded: str) -> Path:
    """A wheel holding a real wheel's recorded METADATA and licence files."""
    src = DATA / "licences" / recorded
    name, version = recorded.rsplit("-", 1)
    info = f"{name}-{version}.dist-info"
    wheel = tmp_path / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            zf.writestr(f"{info}/{f.relative_to(src).as_posix()}", f.read_bytes())
        zf.writestr(f"{info}/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: recorded\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.mark.parametrize(("recorded", "spdx", "evidence"), [
    ("wrapt-1.17.3", "BSD-2-Clause", "licenses/LICENSE: the text of BSD-2-Clause (90% of its reference text)"),
    ("numpy-1.26.4", "BSD-3-Clause", "License field: the text of BSD-3-Clause"),
    ("astunparse-1.6.3", "BSD-3-Clause", "LICENSE: the text of BSD-3-Clause (85% of its reference text)"),
    ("pyasn1_modules-0.4.2", "BSD-2-Clause",
     "licenses/LICENSE.txt: the text of BSD-2-Clause (90% of its reference text)"),
    # namex ships the Apache licence's own short notice, not its text.
    ("namex-0.1.0", "Apache-2.0", "licenses/LICENSE: the text of Apache-2.0 (its distinguishing phrases)"),
])
def test_licence_files_of_real_wheels(tmp_path: Path, recorded: str, spdx: str, evidence: str) -> None:
    wheel = _wheel(tmp_path, recorded)
    lic = licence_of_wheel(wheel, read_metadata(wheel))
    assert (lic.spdx, lic.evidence) == (spdx, evidence)


def test_numpy_licence_file_is_its_own_licence_before_the_bundled_ones(tmp_path: Path) -> None:
    from wheelferry.offline.licences import licence_in_text

    text = (DATA / "licences" / "numpy-1.26.4" / "LICENSE.txt").read_text()
    assert "GCC RUNTIME LIBRARY EXCEPTION" in text.upper() and licence_in_text(text) == "BSD-3-Clause"


def test_a_policy_denying_the_nvidia_id_flags_every_nvidia_wheel() -> None:
    policy = policy_from_text(f'[licenses]\ndeny = ["{NVIDIA}"]\nunknown = "warn"\n', "p.toml")
    facts = []
    for path in _recorded():
        lic = licence_of(path.read_bytes())
        name, version = path.name.split("-")[:2]
        facts.append(PackageFacts(name, version, path.name[:-len(".metadata")], lic.spdx, lic.text))
    report = evaluate(policy, facts)
    flagged = {v.file for v in report.violations}
    nvidia = {f.file for f in facts if f.name.startswith(("nvidia_", "tensorrt"))}
    assert len(nvidia) > 30 and flagged == nvidia
    assert {v.rule for v in report.violations} == {"licence-denied"}


# --- the recorded corpus of popular projects (tests/data/corpus: 343 projects' METADATA) --------------

CORPUS = DATA / "corpus" / "metadata"

# Popular projects and the licence each one is known to be under (its repository's licence
# file), independently of what this code makes of their METADATA.
POPULAR: dict[str, str] = {
    "requests": "Apache-2.0", "urllib3": "MIT", "flask": "BSD-3-Clause", "django": "BSD-3-Clause",
    "fastapi": "MIT", "starlette": "BSD-3-Clause", "uvicorn": "BSD-3-Clause", "gunicorn": "MIT",
    "werkzeug": "BSD-3-Clause", "pydantic": "MIT", "celery": "BSD-3-Clause", "redis": "MIT",
    "boto3": "Apache-2.0", "botocore": "Apache-2.0", "grpcio": "Apache-2.0", "protobuf": "BSD-3-Clause",
    "websockets": "BSD-3-Clause", "tornado": "Apache-2.0", "httpx": "BSD-3-Clause", "pandas": "BSD-3-Clause",
    "scipy": "BSD-3-Clause", "scikit-learn": "BSD-3-Clause", "pyyaml": "MIT", "attrs": "MIT",
    "click": "BSD-3-Clause", "pytest": "MIT", "black": "MIT", "mypy": "MIT", "ruff": "MIT", "setuptools": "MIT",
    "pip": "MIT", "wheel": "MIT", "packaging": "Apache-2.0 OR BSD-2-Clause", "certifi": "MPL-2.0",
    "idna": "BSD-3-Clause", "charset-normalizer": "MIT", "cryptography": "Apache-2.0 OR BSD-3-Clause",
    "pyopenssl": "Apache-2.0", "pynacl": "Apache-2.0", "bcrypt": "Apache-2.0", "psycopg": "LGPL-3.0-only",
    "sqlalchemy": "MIT", "alembic": "MIT", "mako": "MIT", "lxml": "BSD-3-Clause", "beautifulsoup4": "MIT",
    "pillow": "MIT-CMU", "six": "MIT", "pytz": "MIT", "tzdata": "Apache-2.0", "rich": "MIT", "typer": "MIT",
    "tqdm": "MPL-2.0 AND MIT", "networkx": "BSD-3-Clause", "transformers": "Apache-2.0",
    "huggingface-hub": "Apache-2.0", "tokenizers": "Apache-2.0", "safetensors": "Apache-2.0", "jax": "Apache-2.0",
    "xgboost": "Apache-2.0", "lightgbm": "MIT", "onnx": "Apache-2.0", "pyarrow": "Apache-2.0", "polars": "MIT",
    "duckdb": "MIT", "dask": "BSD-3-Clause", "pylint": "GPL-2.0-or-later", "astroid": "LGPL-2.1-or-later",
    "pyinstaller": "GPL-2.0-or-later WITH Bootloader-exception", "zope-interface": "ZPL-2.1",
    "typing-extensions": "PSF-2.0", "pexpect": "ISC", "ptyprocess": "ISC", "pygments": "BSD-2-Clause",
    "sphinx": "BSD-2-Clause", "patsy": "BSD-2-Clause", "cpufeature": "CC0-1.0",
}
# Projects whose METADATA names no single licence (so their licence file decides), by what it says.
CORPUS_UNDECIDED: dict[str, set[str]] = {
    "License: BSD (2 or 3 clauses?)": {
        "amqp", "astunparse", "billiard", "mpmath", "nodeenv", "numba", "nvidia-ml-py", "partd",
        "pyasn1-modules", "pyreadline3", "s3fs", "sympy", "torchvision", "vine", "xlrd"},
    "Classifier: BSD License (2 or 3 clauses?)": {
        "alabaster", "colorama", "itsdangerous", "jinja2", "prompt-toolkit", "seaborn", "sphinxcontrib-applehelp",
        "sphinxcontrib-devhelp", "sphinxcontrib-htmlhelp", "sphinxcontrib-jsmath", "sphinxcontrib-qthelp",
        "sphinxcontrib-serializinghtml", "sqlparse"},
    "License: Dual License": {"python-dateutil"},
    "License: LGPL with exceptions (which LGPL, which exception?)": {"psycopg2", "psycopg2-binary"},
    "Classifiers of two licences, AND or OR unsaid": {"docutils", "pyinstaller-hooks-contrib"},
    "no licence field at all": {"cuda-toolkit", "llvmlite", "namex"},
}


def _corpus() -> dict[str, set[str | None]]:
    got: dict[str, set[str | None]] = {}
    for path in sorted(CORPUS.glob("*.metadata")):
        data = path.read_bytes()
        name = re.sub(r"[-_.]+", "-", read_core_metadata(data).name or "").lower()
        got.setdefault(name, set()).add(licence_of(data).spdx)
    return got


def test_popular_projects_get_their_known_licence() -> None:
    got = _corpus()
    assert len(got) >= 300 and len(POPULAR) >= 50
    assert {name: got.get(name) for name in POPULAR} == {name: {spdx} for name, spdx in POPULAR.items()}


def test_every_corpus_wheel_is_a_valid_spdx_result_or_undecided_for_a_stated_reason() -> None:
    got = _corpus()
    for name, results in got.items():
        for spdx in results - {None}:
            assert spdx is not None and canonical_spdx(spdx) == spdx, name
    undecided = {name for name, results in got.items() if None in results}
    assert undecided == set().union(*CORPUS_UNDECIDED.values())
    nvidia = {name for name in got if name.startswith("nvidia-") and name != "nvidia-ml-py"}
    assert len(nvidia) >= 15 and all(got[name] == {NVIDIA} for name in nvidia)


# --- generated input: agree with packaging, never a traceback --------------------------------------

_versions = st.builds(
    lambda epoch, rel, pre, post, dev: (f"{epoch}!" if epoch else "") + ".".join(map(str, rel))
    + (f"{pre[0]}{pre[1]}" if pre else "") + (f".post{post}" if post is not None else "")
    + (f".dev{dev}" if dev is not None else ""),
    st.sampled_from([0, 0, 0, 1]), st.lists(st.integers(0, 12), min_size=1, max_size=4),
    st.none() | st.tuples(st.sampled_from(["a", "b", "rc"]), st.integers(0, 3)),
    st.none() | st.integers(0, 3), st.none() | st.integers(0, 3))
_ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "~="])


@settings(max_examples=400, deadline=None)
@given(version=_versions, clauses=st.lists(st.tuples(_ops, _versions), min_size=1, max_size=3))
def test_denied_ranges_agree_with_packaging(version: str, clauses: list[tuple[str, str]]) -> None:
    clauses = [(">=" if op == "~=" and len(Version(v).release) < 2 else op, v) for op, v in clauses]
    spec = ",".join(op + v for op, v in clauses)
    denied = parse_denied(f"demo{spec}", "p.toml")
    assert denied.matches("Demo", version) is SpecifierSet(spec).contains(Version(version), prereleases=True)


_ids = st.sampled_from(["MIT", "apache-2.0", "BSD-3-Clause", "GPL-3.0-only", "LicenseRef-NVIDIA-Proprietary",
                        "MPL-2.0", "gpl-2.0-or-later WITH classpath-exception-2.0", "ISC"])
_trees = st.recursive(_ids, lambda inner: st.tuples(st.sampled_from([" AND ", " OR ", " and ", " or "]),
                                                    st.lists(inner, min_size=2, max_size=3)), max_leaves=6)


def _render(tree: object) -> str:
    if isinstance(tree, str):
        return tree
    op, parts = tree  # type: ignore[misc]
    return "(" + op.join(_render(p) for p in parts) + ")"


def _truth(tree: object, ok: set[str]) -> bool:
    if isinstance(tree, str):
        return canonical_spdx(tree) in ok
    op, parts = tree  # type: ignore[misc]
    values = [_truth(p, ok) for p in parts]
    return all(values) if op.strip().upper() == "AND" else any(values)


@settings(max_examples=300, deadline=None)
@given(tree=_trees, allowed=st.sets(st.sampled_from(["MIT", "Apache-2.0", "BSD-3-Clause", "ISC",
                                                     "GPL-2.0-or-later WITH Classpath-exception-2.0"])))
def test_spdx_expressions_agree_with_packaging(tree: object, allowed: set[str]) -> None:
    text = _render(tree)
    canonical = canonical_spdx(text)
    assert canonical == str(canonicalize_license_expression(text))
    assert set(spdx_ids(canonical)) <= {canonical_spdx(i) for i in
                                        ["MIT", "apache-2.0", "BSD-3-Clause", "GPL-3.0-only", NVIDIA, "MPL-2.0",
                                         "gpl-2.0-or-later WITH classpath-exception-2.0", "ISC"]}
    assert spdx_satisfied(canonical, lambda licence: licence in allowed) is _truth(tree, allowed)


@settings(max_examples=500, deadline=None)
@given(text=st.text() | st.from_regex(r'\A(\[(licenses|packages|releases)\]\n)?[a-z-]{1,12} = '
                                      r'(\[("[^"\n]{0,20}",? ?){0,3}\]|"[^"\n]{0,20}"|-?\d{1,4})\n\Z'))
def test_no_policy_file_gives_a_traceback(text: str) -> None:
    try:
        policy_from_text(text, "p.toml")
    except PolicyFileError as exc:
        assert str(exc).startswith("p.toml") and "\n" not in str(exc).split(":", 1)[0]


@pytest.mark.parametrize("text", ['x = "\\UFFFFFFFF"\n', '[licenses]\ndeny = ["\\UFFFFFFFF"]\n',
                                  '[licenses]\ndeny = ["MIT AND"]\n', '[packages]\ndeny = ["a=>1"]\n',
                                  '[packages]\ndeny = ["a>=1.0,"]\n', '[licenses]\nallow = ["NotALicence-9"]\n'])
def test_bad_policy_texts_are_one_clear_error(text: str) -> None:
    with pytest.raises(PolicyFileError, match="^p.toml: "):
        policy_from_text(text, "p.toml")
