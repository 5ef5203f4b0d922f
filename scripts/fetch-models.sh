#!/usr/bin/env bash
# Fill the models folder from models/manifest.toml and verify every file's size and SHA-256.
#
#   scripts/fetch-models.sh [--dest DIR] [--manifest FILE] [--check] [--list] [NAME...]
#
#   NAME...          models to fetch, by their manifest `name` (default: every model with
#                    `default = true`)
#   --dest DIR       where models go, as DIR/<dir>/<file> (default: $TALKSERVE_MODELS_DIR,
#                    else <repo>/models)
#   --manifest FILE  another manifest (default: <repo>/models/manifest.toml)
#   --check          only verify what is already there; fetch nothing
#   --list           print the models in the manifest and exit
#
# Environment:
#   TALKSERVE_MODEL_MIRROR  a local folder laid out like models/ (<dir>/<file>); when set,
#                           files are copied from it and never downloaded. A relative path is
#                           taken from the caller's working directory.
#   TALKSERVE_MODELS_DIR    default for --dest
#
# A file already present with the right size and checksum is left alone. Anything else is
# copied (mirror) or downloaded with curl (url) to a temporary file next to the target,
# verified, then moved into place, so an interrupted run never leaves a half file under the
# real name. Exit status: 0 when every selected file is present and verified, 1 otherwise
# (each bad file is named with its expected and actual size and checksum), 2 on bad usage.
set -euo pipefail

say() { printf 'fetch-models: %s\n' "$*"; }
warn() { printf 'fetch-models: error: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abspath() { if [[ "$1" == /* ]]; then printf '%s' "$1"; else printf '%s' "$PWD/$1"; fi; }

dest="${TALKSERVE_MODELS_DIR:-$repo_root/models}"
manifest="$repo_root/models/manifest.toml"
check_only=0
list_only=0
names=()
while (($#)); do
  case "$1" in
    --dest) (($# >= 2)) || { warn "--dest needs a directory"; exit 2; }; dest="$2"; shift ;;
    --dest=*) dest="${1#--dest=}" ;;
    --manifest) (($# >= 2)) || { warn "--manifest needs a file"; exit 2; }; manifest="$2"; shift ;;
    --manifest=*) manifest="${1#--manifest=}" ;;
    --check) check_only=1 ;;
    --list) list_only=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) warn "unknown option: $1 (see --help)"; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done
[[ -n "$dest" ]] || { warn "--dest must not be empty"; exit 2; }
dest="$(abspath "$dest")"
manifest="$(abspath "$manifest")"
mirror="${TALKSERVE_MODEL_MIRROR:-}"
if [[ -n "$mirror" ]]; then
  [[ -d "$mirror" ]] || die "TALKSERVE_MODEL_MIRROR=$mirror is not a directory (seen from $PWD)"
  mirror="$(cd -- "$mirror" && pwd)"
fi
[[ -r "$manifest" ]] || die "cannot read the manifest $manifest"

# --- manifest -> records -----------------------------------------------------------------
# The awk program (POSIX awk, so Debian's default mawk runs it) checks the documented shape
# and prints one tab-separated record per model and per file:
#   M <name> <dir> <default>
#   F <model name> <dir> <path> <size> <sha256> <url> <path in the mirror>
parser=$(
  cat <<'AWK'
function fail(msg) {
  printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"
  failed = 1
  exit 1
}
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function plain_name(s) { return s != "" && s !~ /[^A-Za-z0-9._-]/ && s != "." && s != ".." }
function need(key, type) {
  if (!(key in val)) fail("[[" kind "]] ending here lacks `" key "`")
  if (typ[key] != type) fail("`" key "` must be " (type == "s" ? "a string" : type == "i" ? "an integer" : "true or false"))
}
function close_table(   k, p, n, parts, i) {
  if (kind == "model") {
    for (k in val) if (k !~ /^(name|dir|default|license|source)$/) fail("unknown [[model]] key `" k "`")
    need("name", "s"); need("dir", "s"); need("default", "b")
    if (!plain_name(val["name"])) fail("model name `" val["name"] "` may use only A-Z a-z 0-9 . _ -")
    if (!plain_name(val["dir"])) fail("model dir `" val["dir"] "` may use only A-Z a-z 0-9 . _ -")
    if (val["name"] in seen) fail("model `" val["name"] "` is listed twice")
    seen[val["name"]] = 1
    model = val["name"]; mdir = val["dir"]; nfiles[model] = 0
    printf "M\t%s\t%s\t%s\n", model, mdir, val["default"]
  } else if (kind == "model.file") {
    for (k in val) if (k !~ /^(path|size|sha256|url|mirror_path)$/) fail("unknown [[model.file]] key `" k "`")
    need("path", "s"); need("size", "i"); need("sha256", "s"); need("url", "s")
    p = val["path"]
    n = split(p, parts, "/")
    for (i = 1; i <= n; i++) if (!plain_name(parts[i])) fail("file path `" p "` must be relative, without empty, . or .. parts, using A-Z a-z 0-9 . _ - /")
    if (length(val["sha256"]) != 64 || val["sha256"] ~ /[^0-9a-f]/) fail("sha256 must be 64 lowercase hex digits")
    if (val["url"] !~ /^https?:\/\//) fail("url must start with https:// or http://")
    if ((model SUBSEP p) in fseen) fail("file `" p "` is listed twice in model `" model "`")
    fseen[model SUBSEP p] = 1
    nfiles[model]++
    mp = mdir "/" p
    if ("mirror_path" in val) {
      if (typ["mirror_path"] != "s") fail("`mirror_path` must be a string")
      mp = val["mirror_path"]
      if (mp == "" || mp ~ /^\// || mp ~ /[^A-Za-z0-9._\/-]/) fail("mirror_path `" mp "` must be relative, using A-Z a-z 0-9 . _ - /")
    }
    printf "F\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", model, mdir, p, val["size"], val["sha256"], val["url"], mp
  }
  split("", val); split("", typ)
}
{ sub(/\r$/, "") }
/^[ \t]*(#.*)?$/ { next }
/^[ \t]*\[\[model\]\][ \t]*(#.*)?$/ { close_table(); kind = "model"; next }
/^[ \t]*\[\[model\.file\]\][ \t]*(#.*)?$/ {
  close_table()
  if (model == "") fail("[[model.file]] before any [[model]]")
  kind = "model.file"; next
}
/^[ \t]*\[/ { fail("unsupported table header (only [[model]] and [[model.file]] are allowed)") }
/^[ \t]*[A-Za-z0-9_]+[ \t]*=/ {
  if (kind == "") fail("key outside a [[model]] or [[model.file]] table")
  eq = index($0, "=")
  key = trim(substr($0, 1, eq - 1))
  rest = trim(substr($0, eq + 1))
  if (substr(rest, 1, 1) == "\"") {
    rest = substr(rest, 2)
    q = index(rest, "\"")
    if (q == 0) fail("unterminated string")
    v = substr(rest, 1, q - 1)
    after = trim(substr(rest, q + 1))
    if (after != "" && substr(after, 1, 1) != "#") fail("unexpected text after the string")
    if (index(v, "\\")) fail("backslash escapes are not supported")
    if (index(v, "\t")) fail("tab characters are not supported in values")
    t = "s"
  } else {
    h = index(rest, "#")
    if (h) rest = trim(substr(rest, 1, h - 1))
    if (rest ~ /^[0-9]+$/) t = "i"
    else if (rest == "true" || rest == "false") t = "b"
    else fail("value of `" key "` must be a \"string\", an integer or true/false")
    v = rest
  }
  if (key in val) fail("`" key "` appears twice in one table")
  val[key] = v; typ[key] = t
  next
}
{ fail("cannot parse this line (expected a [[table]] header, key = value, a comment or a blank line)") }
END {
  if (failed) exit 1
  close_table()
  if (failed) exit 1
  for (m in nfiles) if (nfiles[m] == 0) { printf "%s: model `%s` has no [[model.file]]\n", FILENAME, m > "/dev/stderr"; exit 1 }
}
AWK
)
records="$(awk "$parser" "$manifest")" || die "the manifest $manifest is malformed (see above)"

declare -A model_dir=() model_default=()
model_order=()
f_model=() f_dir=() f_path=() f_size=() f_sha=() f_url=() f_mirror=()
while IFS=$'\t' read -r kind a b c d e f g; do
  case "$kind" in
    M) model_order+=("$a"); model_dir[$a]="$b"; model_default[$a]="$c" ;;
    F) f_model+=("$a"); f_dir+=("$b"); f_path+=("$c"); f_size+=("$d"); f_sha+=("$e"); f_url+=("$f"); f_mirror+=("$g") ;;
  esac
done <<<"$records"
((${#model_order[@]} > 0)) || die "the manifest $manifest lists no models"

if ((list_only)); then
  for m in "${model_order[@]}"; do
    n=0
    for i in "${!f_model[@]}"; do [[ "${f_model[$i]}" == "$m" ]] && n=$((n + 1)); done
    printf '%-20s dir=%-20s default=%-5s files=%d\n' "$m" "${model_dir[$m]}" "${model_default[$m]}" "$n"
  done
  exit 0
fi

# --- selection ---------------------------------------------------------------------------

declare -A selected=()
if ((${#names[@]} > 0)); then
  for n in "${names[@]}"; do
    [[ -n "${model_dir[$n]+x}" ]] || die "no model named '$n' in $manifest (known: ${model_order[*]})"
    selected[$n]=1
  done
else
  for m in "${model_order[@]}"; do
    [[ "${model_default[$m]}" == true ]] && selected[$m]=1
  done
  ((${#selected[@]} > 0)) || die "no model in $manifest has default = true; name the models to fetch"
fi

# --- fetch and verify --------------------------------------------------------------------

tmp_files=()
cleanup() { ((${#tmp_files[@]} == 0)) || rm -f -- "${tmp_files[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

actual_size=""
actual_sha=""
# matches FILE SIZE SHA: 0 when FILE has that size and checksum; sets actual_size/actual_sha.
matches() {
  actual_size="$(stat -c %s -- "$1")"
  actual_sha="$(sha256sum <"$1")"
  actual_sha="${actual_sha%% *}"
  [[ "$actual_size" == "$2" && "$actual_sha" == "$3" ]]
}
mismatch_detail() {
  printf 'expected %s bytes, sha256 %s; got %s bytes, sha256 %s' "$1" "$2" "$actual_size" "$actual_sha"
}

failed=()
declare -A failed_idx=()
fail_file() { warn "$2"; failed+=("$1"); failed_idx[$3]=1; }

if [[ -n "$mirror" ]]; then
  say "source: mirror $mirror"
elif ((!check_only)); then
  say "source: the URLs in the manifest (set TALKSERVE_MODEL_MIRROR to copy from a local folder)"
fi
say "destination: $dest"

total=0
for i in "${!f_model[@]}"; do
  [[ -n "${selected[${f_model[$i]}]+x}" ]] || continue
  total=$((total + 1))
  rel="${f_dir[$i]}/${f_path[$i]}"
  target="$dest/$rel"
  size="${f_size[$i]}"
  sha="${f_sha[$i]}"

  if [[ -f "$target" ]]; then
    if matches "$target" "$size" "$sha"; then
      say "ok       $rel (present, verified)"
      continue
    fi
    if ((check_only)); then
      fail_file "$rel" "$rel is corrupt: $(mismatch_detail "$size" "$sha") ($target)" "$i"
      continue
    fi
    say "refetch  $rel (present but $(mismatch_detail "$size" "$sha"))"
  elif ((check_only)); then
    fail_file "$rel" "$rel is missing ($target)" "$i"
    continue
  fi

  mkdir -p -- "$(dirname -- "$target")"
  tmp="$(mktemp -- "$target.part.XXXXXX")"
  tmp_files+=("$tmp")
  if [[ -n "$mirror" ]]; then
    from="$mirror/${f_mirror[$i]}"
    if [[ ! -f "$from" ]]; then
      fail_file "$rel" "$rel is missing from the mirror: no file $from (unset TALKSERVE_MODEL_MIRROR to download it from ${f_url[$i]})" "$i"
      rm -f -- "$tmp"
      continue
    fi
    say "copy     $rel from $from"
    if ! cp -- "$from" "$tmp"; then
      fail_file "$rel" "$rel: copying $from failed" "$i"
      rm -f -- "$tmp"
      continue
    fi
  else
    from="${f_url[$i]}"
    say "download $rel from $from"
    progress=(--silent --show-error)
    [[ -t 2 ]] && progress=(--progress-bar)
    rc=0
    curl --fail --location "${progress[@]}" --retry 3 --connect-timeout 20 \
      --output "$tmp" -- "$from" || rc=$?
    if ((rc != 0)); then
      fail_file "$rel" "$rel: download failed from $from (curl exit status $rc; no network? set TALKSERVE_MODEL_MIRROR to a local copy)" "$i"
      rm -f -- "$tmp"
      continue
    fi
  fi
  if ! matches "$tmp" "$size" "$sha"; then
    fail_file "$rel" "$rel from $from is corrupt: $(mismatch_detail "$size" "$sha")" "$i"
    rm -f -- "$tmp"
    continue
  fi
  chmod 0644 -- "$tmp"
  mv -f -- "$tmp" "$target"
  say "fetched  $rel (verified)"
done

# Verify every selected file once more where it finally lies, so success means exactly
# "everything the manifest selects is in place and intact".
for i in "${!f_model[@]}"; do
  [[ -n "${selected[${f_model[$i]}]+x}" && -z "${failed_idx[$i]+x}" ]] || continue
  rel="${f_dir[$i]}/${f_path[$i]}"
  target="$dest/$rel"
  if [[ ! -f "$target" ]]; then
    fail_file "$rel" "$rel is missing after fetching ($target)" "$i"
  elif ! matches "$target" "${f_size[$i]}" "${f_sha[$i]}"; then
    fail_file "$rel" "$rel is corrupt after fetching: $(mismatch_detail "${f_size[$i]}" "${f_sha[$i]}") ($target)" "$i"
  fi
done

if ((${#failed[@]} > 0)); then
  warn "${#failed[@]} of $total model files missing or corrupt: ${failed[*]}"
  exit 1
fi
say "all $total model files present and verified in $dest"
