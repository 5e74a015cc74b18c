"""The closing summary of .ci/run (.ci/layers.sh), driven with made-up layers: it never says
"all layers passed" unless every layer ran and passed, and the exit status stays non-zero on
any failure."""

from __future__ import annotations

import subprocess

from pointsmesh import ROOT

# .ci/run's own frame: strict mode, the layers, the summary on exit.
PROLOGUE = """
set -euo pipefail
CI_EXPECTED_SKIPS=$(mktemp)
printf '%s\\n' '# by design' 'b tests/e2e/test_nodes.py needs kind' 'b tests/x.py no IPv6' \\
    >"$CI_EXPECTED_SKIPS"
. .ci/layers.sh
layer a "layer a: first"
layer b "layer b: second"
layer c "layer c: third"
trap 'rc=$?; ci_summary "$rc"; exit "$rc"' EXIT
"""


def run_ci(body: str) -> tuple[int, list[str]]:
    res = subprocess.run(["bash", "-c", PROLOGUE + body], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert res.stderr == "", res.stderr
    out = res.stdout.splitlines()
    return res.returncode, out[out.index(f"=== [ci] summary (exit status {res.returncode})"):]


def test_all_ran_and_passed() -> None:
    code, summary = run_ci("layer_run a true\nlayer_run b true\nlayer_run c echo hi\n")
    assert code == 0
    assert summary[1:] == [
        "  layer a: first                               PASSED",
        "  layer b: second                              PASSED",
        "  layer c: third                               PASSED",
        "=== [ci] all 3 layers ran and passed",
    ]


def test_skipped_layers_are_not_all_passed() -> None:
    code, summary = run_ci('layer_run a true\nlayer_skip b "no Docker"\nlayer_skip c "no Docker"\n')
    assert code == 0  # skipping is not a failure ...
    assert summary[2:] == [
        "  layer b: second                              SKIPPED: no Docker",
        "  layer c: third                               SKIPPED: no Docker",
        "=== [ci] NOT ALL LAYERS RAN: 1 of 3 passed, 2 skipped, 0 not run "
        "(exit status 0: nothing failed)",
    ]  # ... but never "all passed"
    assert not any("all 3 layers ran and passed" in line for line in summary)


def test_a_failed_layer_stops_the_run_and_keeps_its_status() -> None:
    code, summary = run_ci("layer_run a true\nlayer_run b sh -c 'exit 3'\nlayer_run c true\n")
    assert code == 3
    assert summary[1:] == [
        "  layer a: first                               PASSED",
        "  layer b: second                              FAILED: exit status 3",
        "  layer c: third                               NOT RUN: never reached (the run stopped "
        "before it)",
        "=== [ci] FAILED: 1 of 3 layers failed; 1 of 3 passed, 0 skipped, 1 not run "
        "(exit status 3)",
    ]


def test_tests_skipped_inside_a_layer_are_counted_and_listed() -> None:
    fake_pytest = ("printf 'SKIPPED [2] tests/e2e/test_nodes.py:110: SKIPPED: needs kind\\n"
                   "SKIPPED [1] tests/x.py:3: no IPv6\\n'")
    code, summary = run_ci(f"layer_run a true\nlayer_run b {fake_pytest}\nlayer_run c true\n")
    assert code == 0
    assert summary[2:] == [
        "  layer b: second                              PASSED (skipped tests inside it: 3)",
        "      expected   SKIPPED [2] tests/e2e/test_nodes.py:110: SKIPPED: needs kind",
        "      expected   SKIPPED [1] tests/x.py:3: no IPv6",
        "  layer c: third                               PASSED",
        "=== [ci] all 3 layers ran and passed (skipped tests within them: 3, "
        "all expected, listed above)",
    ]


def test_a_skip_not_listed_fails_its_layer() -> None:
    """A skip in another layer, another file, or with another reason than the list gives is
    unexpected: the layer fails (pytest itself exited 0) and the run stops."""
    for skipped in ("SKIPPED [1] tests/x.py:3: no IPv6",      # listed for layer b only
                    "SKIPPED [1] tests/y.py:3: no IPv6",      # another file
                    "SKIPPED [1] tests/unit/test_k8s_lib.py:365: no helm here"):
        code, summary = run_ci(f"layer_run a printf '{skipped}\\n'\nlayer_run b true\n")
        assert code == 1, skipped
        assert summary[1].startswith(
            "  layer a: first                               FAILED: tests skipped that /"), summary
        assert summary[1].endswith(" does not expect (skipped tests inside it: 1)"), summary
        assert summary[2:4] == [
            f"      UNEXPECTED {skipped}",
            "  layer b: second                              NOT RUN: never reached (the run "
            "stopped before it)",
        ], summary


def test_no_list_of_expected_skips_fails_every_layer() -> None:
    code, summary = run_ci("CI_EXPECTED_SKIPS=/nonexistent\nlayer_run a true\n")
    assert code == 1
    assert "FAILED: tests skipped that /nonexistent does not expect" in summary[1]


def test_the_repository_list_names_existing_files_and_layers() -> None:
    ci_run = (ROOT / ".ci" / "run").read_text()
    for line in (ROOT / ".ci" / "expected-skips").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        layer_id, path, reason = line.split(None, 2)
        assert f"layer {layer_id} " in ci_run, line
        assert (ROOT / path).is_file(), line
        assert reason.strip() in (ROOT / path).read_text(), line


def test_a_failure_outside_the_layers_fails_the_run() -> None:
    code, summary = run_ci("layer_run a true\nlayer_run b true\nlayer_run c true\nfalse\n")
    assert code == 1
    assert summary[-1] == ("=== [ci] FAILED outside the layers (exit status 1): 3 of 3 passed, "
                           "0 skipped, 0 not run")
