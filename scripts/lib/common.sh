# shellcheck shell=bash
# How the scripts in scripts/ show and run commands. Sourced, not run.
#
# Every command that touches a cluster, a cloud or an image goes through run, capture, pipe or
# write_file: each prints the command first (on stdout, one line, "+ " in front, quoted so that
# a shell reads it back the same), then runs it, unless DRY_RUN=1, in which case it only prints.

DRY_RUN=${DRY_RUN:-0}

say() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}
dry_run() { [ "$DRY_RUN" = 1 ]; }

# The words as one line a shell reads back into the same words: plain words as they are, any
# other in single quotes.
quote_words() {
  local out=() word squote="'" escaped="'\\''"
  for word in "$@"; do
    if [[ -n $word && $word =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//$squote/$escaped}'")
    fi
  done
  printf '%s' "${out[*]}"
}

show() { printf '+ %s\n' "$(quote_words "$@")"; }

run() {
  show "$@"
  if dry_run; then return 0; fi
  "$@"
}

# capture NAME PLACEHOLDER COMMAND...: NAME=$(COMMAND...); in a dry run NAME=PLACEHOLDER.
capture() {
  local name=$1 placeholder=$2 value
  shift 2
  # shellcheck disable=SC2016 # the $( ) is shown, not run
  printf '+ %s=$(%s)\n' "$name" "$(quote_words "$@")"
  if dry_run; then
    value=$placeholder
  else
    value=$("$@") || die "failed: $(quote_words "$@")"
  fi
  printf -v "$name" '%s' "$value"
}

# pipe COMMAND1... '|' COMMAND2...: the first command's output into the second (no temporary
# file, so that secrets such as istioctl create-remote-secret's never touch the disk).
pipe() {
  local left=() right=() seen=0 word
  for word in "$@"; do
    if [ "$seen" = 0 ] && [ "$word" = '|' ]; then
      seen=1
    elif [ "$seen" = 0 ]; then
      left+=("$word")
    else
      right+=("$word")
    fi
  done
  if [ "$seen" = 0 ] || [ ${#left[@]} -eq 0 ] || [ ${#right[@]} -eq 0 ]; then
    die "pipe needs: command '|' command (got: $*)"
  fi
  printf '+ %s | %s\n' "$(quote_words "${left[@]}")" "$(quote_words "${right[@]}")"
  if dry_run; then return 0; fi
  "${left[@]}" | "${right[@]}"
}

# write_file PATH CONTENT: shown as the here-document that would write it.
write_file() {
  local path=$1 content=$2
  printf '+ cat > %s <<'"'"'EOF'"'"'\n%s\nEOF\n' "$(printf '%q' "$path")" "$content"
  if dry_run; then return 0; fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path"
}

# wait_for NAME PLACEHOLDER TIMEOUT_SECONDS COMMAND...: run COMMAND every 5 s until it prints
# something, then NAME=that output (e.g. a load balancer's address). Dry run: NAME=PLACEHOLDER.
wait_for() {
  local name=$1 placeholder=$2 timeout=$3 value="" deadline
  shift 3
  # shellcheck disable=SC2016 # the $( ) is shown, not run
  printf '+ %s=$(%s)  # repeated until not empty, at most %ss\n' \
    "$name" "$(quote_words "$@")" "$timeout"
  if dry_run; then
    printf -v "$name" '%s' "$placeholder"
    return 0
  fi
  deadline=$((SECONDS + timeout))
  while [ -z "$value" ]; do
    value=$("$@" 2>/dev/null || true)
    [ -n "$value" ] && break
    [ "$SECONDS" -lt "$deadline" ] || die "nothing from $(quote_words "$@") after ${timeout}s"
    sleep 5
  done
  printf -v "$name" '%s' "$value"
}

# wait_until EXPECTED TIMEOUT_SECONDS COMMAND...: run COMMAND every 5 s until it prints
# EXPECTED; fail after the timeout, saying what it printed last.
wait_until() {
  local expected=$1 timeout=$2 value="" deadline
  shift 2
  printf '+ %s  # repeated until it prints %s, at most %ss\n' \
    "$(quote_words "$@")" "$expected" "$timeout"
  if dry_run; then return 0; fi
  deadline=$((SECONDS + timeout))
  while :; do
    value=$("$@" 2>/dev/null || true)
    [ "$value" = "$expected" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] \
      || die "$(quote_words "$@") printed '$value', not '$expected', for ${timeout}s"
    sleep 5
  done
}

# need COMMAND...: stop early, with what to install, when a tool is missing (not in a dry run:
# a dry run runs none of them).
need() {
  local cmd missing=()
  if dry_run; then return 0; fi
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (see --help for where to get them)"
}

# relative_path FROM_DIR TO_PATH: TO_PATH relative to FROM_DIR (both absolute, no symlinks
# needed). Kustomize accepts only relative paths between kustomizations.
relative_path() {
  local from=${1%/} to=${2%/} up=""
  [ -n "$from" ] || from=/
  while [ "$from" != / ] && [ "${to#"$from"/}" = "$to" ] && [ "$to" != "$from" ]; do
    from=$(dirname "$from")
    up="../$up"
  done
  if [ "$to" = "$from" ]; then
    printf '%s\n' "${up%/}"
  elif [ "$from" = / ]; then
    printf '%s%s\n' "$up" "${to#/}"
  else
    printf '%s%s\n' "$up" "${to#"$from"/}"
  fi
}

# absolute_dir DIR: DIR as an absolute path, without creating it.
absolute_dir() {
  if [ -d "$1" ]; then
    (cd "$1" && pwd -P)
  else
    case $1 in
      /*) printf '%s\n' "${1%/}" ;;
      *) printf '%s/%s\n' "$(pwd -P)" "${1#./}" ;;
    esac
  fi
}
