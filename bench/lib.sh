# Sourced by the bench scripts (run from the repository's root): where the shared tools are,
# the iscsi-load binary, and reading iscsi-load's one-line JSON result.

# The workplace's shared tools (peer-bench.sh, iscsi-load.c): beside the checkout, or /work/shared.
TOOLS=../shared/tools
[ -f "$TOOLS/peer-bench.sh" ] || TOOLS=/work/shared/tools

# iscsi_load DIR: prints the path of iscsi-load, the test setup's build or one made now in DIR.
iscsi_load() {
  if [ -x test/.cache/iscsi-load ]; then echo test/.cache/iscsi-load; return; fi
  gcc -O2 -o "$1/iscsi-load" "$TOOLS/iscsi-load.c" -liscsi && echo "$1/iscsi-load"
}

# load_field NAME JSON: the number field NAME of an iscsi-load result (empty when it has none).
load_field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }
