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

# single_node Q DATA_DIR ADDRESS IQN [VAR=value...]: a fresh node in DATA_DIR (a 4 GiB file
# archive beside it) listening on ADDRESS, with target IQN and a 2 GiB LUN 0; the variables go
# to the daemon. Stop it with `Q stop --data-dir DATA_DIR`.
single_node() {
  local q=$1 data=$2 addr=$3 iqn=$4
  shift 4
  env "$@" "$q" init --archive "$data.img:4G" --address "$addr" --data-dir "$data" >/dev/null
  "$q" target create "$iqn" --data-dir "$data" >/dev/null
  "$q" lun create --target "$iqn" --size 2G --data-dir "$data" >/dev/null
}
