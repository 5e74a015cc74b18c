# shellcheck shell=bash
# The CI layers' outcomes and the closing summary of .ci/run (sourced by it; bash 4+).
# tests/unit/test_ci_layers.py drives these functions with made-up layers.
#
#   layer ID "title"            declare a layer, in the order the summary lists them
#   layer_run ID command...     run it (output also kept to count pytest's skipped tests):
#                               passed, or failed (its exit status is returned); a test skipped
#                               that $CI_EXPECTED_SKIPS does not list for the layer fails it
#   layer_skip ID "reason"      it cannot run here: said now, loudly, and in the summary
#   ci_summary EXIT_STATUS      one line per layer, then the verdict; "all layers passed" only
#                               when every layer ran and passed
#
# A layer still running when the script exits failed; one never reached is "not run".

CI_LAYERS=()
declare -A CI_TITLE=() CI_STATE=() CI_NOTE=() CI_SKIPS=() CI_UNEXPECTED=()
# The skips by design, one line each: LAYER PATH REASON (REASON: a fixed string that pytest's
# reason must contain). Any other skip fails its layer: a test that stopped running must not
# pass unnoticed as a changed count.
CI_EXPECTED_SKIPS=${CI_EXPECTED_SKIPS:-$(dirname "${BASH_SOURCE[0]}")/expected-skips}
CI_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/ci-layers.XXXXXX")

layer() {
    CI_LAYERS+=("$1")
    CI_TITLE[$1]=$2
    CI_STATE[$1]="not run"
    CI_NOTE[$1]=""
}

# The tests pytest skipped in a layer's output: the "SKIPPED [n] file:line: reason" lines of
# -ra (CI sets PYTEST_ADDOPTS=-ra), counted by their [n].
_ci_skipped_lines() {
    grep -aE '^SKIPPED \[[0-9]+\] ' "$1" 2>/dev/null || true
}

# The lines of SKIPPED (arg 2) that the expected list does not give for layer ID (arg 1).
_ci_unexpected_skips() {
    [ -n "$2" ] || return 0
    awk -v layer="$1" '
        NR == FNR {
            if ($0 ~ /^[[:space:]]*(#|$)/ || $1 != layer) next
            reason = $0
            sub(/^[[:space:]]*[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+/, "", reason)
            n++; path[n] = $2; why[n] = reason
            next
        }
        {
            loc = $3; sub(/:.*/, "", loc)
            rest = $0; sub(/^SKIPPED \[[0-9]+\] [^ ]+ /, "", rest)
            for (i = 1; i <= n; i++) if (loc == path[i] && index(rest, why[i])) next
            print
        }' "$CI_EXPECTED_SKIPS" - <<<"$2"
}

layer_run() {
    local id=$1 log rc=0
    shift
    log="$CI_LOGS/$id.log"
    CI_STATE[$id]=running
    # In an `if`, a failure neither stops the script here nor loses the status: pipefail makes
    # it the command's (tee does not fail).
    if "$@" 2>&1 | tee "$log"; then rc=0; else rc=$?; fi
    CI_SKIPS[$id]=$(_ci_skipped_lines "$log")
    if [ ! -f "$CI_EXPECTED_SKIPS" ]; then
        CI_UNEXPECTED[$id]="(no list of expected skips: $CI_EXPECTED_SKIPS)"
    else
        CI_UNEXPECTED[$id]=$(_ci_unexpected_skips "$id" "${CI_SKIPS[$id]}")
    fi
    if [ "$rc" -eq 0 ] && [ -n "${CI_UNEXPECTED[$id]}" ]; then
        rc=1
        CI_STATE[$id]=failed
        CI_NOTE[$id]="tests skipped that $CI_EXPECTED_SKIPS does not expect"
        printf '\n!!! [ci] %s: unexpected skips (not in %s):\n%s\n' \
            "${CI_TITLE[$id]}" "$CI_EXPECTED_SKIPS" "${CI_UNEXPECTED[$id]}"
    elif [ "$rc" -eq 0 ]; then
        CI_STATE[$id]=passed
    else
        CI_STATE[$id]=failed
        CI_NOTE[$id]="exit status $rc"
    fi
    return "$rc"
}

layer_skip() {
    CI_STATE[$1]=skipped
    CI_NOTE[$1]=$2
    printf '\n!!! [ci] SKIPPED: %s\n!!! [ci] reason: %s\n\n' "${CI_TITLE[$1]}" "$2"
}

ci_summary() {
    local status=$1 id state n ran=0 passed=0 failed=0 skipped=0 notrun=0 tests_skipped=0
    printf '\n=== [ci] summary (exit status %s)\n' "$status"
    for id in "${CI_LAYERS[@]}"; do
        state=${CI_STATE[$id]}
        if [ "$state" = running ]; then
            # Still running when the script exited: it failed (or was interrupted).
            state=failed
            CI_NOTE[$id]="stopped by exit status $status"
        fi
        case $state in
            passed) ran=$((ran + 1)); passed=$((passed + 1)) ;;
            failed) ran=$((ran + 1)); failed=$((failed + 1)) ;;
            skipped) skipped=$((skipped + 1)) ;;
            *) notrun=$((notrun + 1)); CI_NOTE[$id]="never reached (the run stopped before it)" ;;
        esac
        n=0
        if [ -n "${CI_SKIPS[$id]:-}" ]; then
            n=$(awk '{ gsub(/[^0-9]/, "", $2); s += $2 } END { print s + 0 }' <<<"${CI_SKIPS[$id]}")
            tests_skipped=$((tests_skipped + n))
        fi
        printf '  %-44s %s' "${CI_TITLE[$id]}" "${state^^}"
        [ -n "${CI_NOTE[$id]}" ] && printf ': %s' "${CI_NOTE[$id]}"
        [ "$n" -gt 0 ] && printf ' (skipped tests inside it: %s)' "$n"
        printf '\n'
        if [ "$n" -gt 0 ]; then
            # Each skip marked: expected (listed) or UNEXPECTED (fails the layer).
            while IFS= read -r line; do
                if grep -qxF -- "$line" <<<"${CI_UNEXPECTED[$id]:-}"; then
                    printf '      UNEXPECTED %s\n' "$line"
                else
                    printf '      expected   %s\n' "$line"
                fi
            done <<<"${CI_SKIPS[$id]}"
        fi
    done
    local total=${#CI_LAYERS[@]} counts
    counts="$passed of $total passed, $skipped skipped, $notrun not run"
    if [ "$status" -eq 0 ] && [ "$passed" -eq "$total" ]; then
        if [ "$tests_skipped" -gt 0 ]; then
            printf '=== [ci] all %s layers ran and passed (skipped tests within them: %s, %s)\n' \
                "$total" "$tests_skipped" "all expected, listed above"
        else
            printf '=== [ci] all %s layers ran and passed\n' "$total"
        fi
    elif [ "$status" -eq 0 ] && [ "$failed" -eq 0 ]; then
        printf '=== [ci] NOT ALL LAYERS RAN: %s (exit status 0: nothing failed)\n' "$counts"
    elif [ "$failed" -eq 0 ]; then
        printf '=== [ci] FAILED outside the layers (exit status %s): %s\n' "$status" "$counts"
    else
        printf '=== [ci] FAILED: %s of %s layers failed; %s (exit status %s)\n' \
            "$failed" "$total" "$counts" "$status"
    fi
    rm -rf "$CI_LOGS"
}
