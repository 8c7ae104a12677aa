# shellcheck shell=bash
# Sourced by prepare.sh and prepare-ollama.sh: sizes and the carry plan of the device calls.
# Needs LIMIT (bytes one call may carry) and sets TREE (the checkout's tracked and untracked,
# not ignored, files: every call carries them).
bytes() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
TREE=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
plan() {  # CALL PATHS...: one call's carry, its size with the tree, and whether it fits
  local call=$1 total; shift
  total=$(( TREE + $(bytes "$@") ))
  printf '  call %s carry %-45s %s %s\n' "$call" "$(printf '"%s",' "$@" | sed 's/,$//; s/^/[/; s/$/]/')" \
    "$(mib $total)" "$([ $total -lt "$LIMIT" ] && echo ok || echo 'OVER 64 MiB')"
  [ $total -lt "$LIMIT" ]
}
