#!/usr/bin/env bash
# Build (or reuse) the development environment in .venv:
#   1. system tools (cmake, g++, Python headers), installed with apt where missing;
#   2. a Python 3.11 venv with requirements/env.txt (torch, ROS 2 wheels, ...);
#   3. a vision_msgs-compatible interface package, only when no vision_msgs is importable;
#   4. this package (msg/ + Python + node + launch + config) installed into the venv;
#   5. when ../shared/ros2-tools exists: the ROS 2 launch / CLI tools (ros2 launch, ros2 param, ...,
#      launch_testing) built from its sources into .venv-ros2-tools (git-ignored; `source
#      .venv-ros2-tools/setup.sh` puts them on PATH, tools/test.sh does it for the tests).
# Each step is skipped when a stamp of its inputs is unchanged, so a second run takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SMILETRACK_VENV:-$ROOT/.venv}
PY=${SMILETRACK_PYTHON:-python3.11}
STAMPS=$VENV/.stamps
log() { printf '[setup_env] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ -f $STAMPS/$1 && $(cat "$STAMPS/$1") == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }

ensure_system_tools() {
    local missing=()
    command -v cmake >/dev/null || missing+=(cmake)
    command -v g++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    if ((${#missing[@]})); then
        log "missing system packages: ${missing[*]}; installing with apt"
        command -v apt-get >/dev/null || die "install these system packages: ${missing[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
            || die "could not install system packages: ${missing[*]}"
    fi
    command -v "$PY" >/dev/null || die "$PY not found: the ROS 2 wheels are built for CPython 3.11 (set SMILETRACK_PYTHON)"
    local inc
    inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    if [[ ! -f $inc/Python.h ]]; then
        log "Python.h missing in $inc; installing python3-dev with apt"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-dev \
            || die "install the Python 3.11 headers (python3.11-dev / python3-dev)"
        [[ -f $inc/Python.h ]] || die "Python.h still missing in $inc: install the headers of $PY"
    fi
}

ensure_python_packages() {
    [[ -x $VENV/bin/python ]] || { log "creating venv $VENV"; "$PY" -m venv "$VENV"; }
    local h
    h=$(hash_of "$ROOT/requirements/env.txt")
    stamp_ok requirements "$h" && return
    log "installing requirements/env.txt (first run: several minutes)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements/env.txt"
    fix_wheel_cmake_paths
    stamp_set requirements "$h"
}

# The ROS wheels' CMake configs name the include dirs of the machine that built them.
fix_wheel_cmake_paths() {
    local pyinc npinc
    pyinc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    npinc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
    # (grep finds nothing once the paths are fixed: not an error)
    { grep -rlE '/opt/python/cp311-cp311/(include/python3.11|lib/python3.11/site-packages/numpy/_core/include)' \
        "$VENV/share" --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
        sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g" \
               -e "s#/opt/python/cp311-cp311/include/python3.11#$pyinc#g" "$f"
    done
}

# Configure, build and install one interface/ament package into the venv prefix.
cmake_install() {
    local src=$1 build=$VENV/build/$2
    AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV cmake -S "$src" -B "$build" -G "Unix Makefiles" \
        -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
        -DCMAKE_BUILD_TYPE=Release >"$build.log" 2>&1 || { tail -40 "$build.log"; die "cmake configure of $src failed (log: $build.log)"; }
    AMENT_PREFIX_PATH=$VENV cmake --build "$build" --target install -j"$(nproc)" >>"$build.log" 2>&1 \
        || { tail -40 "$build.log"; die "build of $src failed (log: $build.log)"; }
}

ensure_vision_msgs() {
    local src=$ROOT/compat/vision_msgs h
    h=$(hash_of "$src/package.xml" "$src/CMakeLists.txt" "$src"/msg/*.msg)
    if stamp_ok vision_msgs "$h"; then return; fi
    if [[ ! -f $STAMPS/vision_msgs ]] && "$VENV/bin/python" -c 'import vision_msgs.msg' 2>/dev/null; then
        log "using the vision_msgs already importable (a sourced ROS 2 install)"
        return
    fi
    log "building the vision_msgs-compatible interface package"
    mkdir -p "$VENV/build"
    cmake_install "$src" vision_msgs
    stamp_set vision_msgs "$h"
}

# Always run: an incremental install only copies what changed (about a second).
# Modules deleted from the source are deleted from the installed copy too (generated msg/ kept).
ensure_package() {
    mkdir -p "$VENV/build"
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/smiletrack_ros
    if [[ -d $site ]]; then
        (cd "$site" && find . -path ./msg -prune -o -type f \( -name '*.py' -o -name '*.json' -o -name '*.safetensors' -o -name '*.yaml' \) -print) |
            while read -r rel; do [[ -e $ROOT/smiletrack_ros/$rel ]] || rm -f "$site/$rel"; done
    fi
    cmake_install "$ROOT" smiletrack_ros
}

# The launch tool set is built from ../shared (no registry ships it); without ../shared nothing
# depends on it and the launch tests skip.
ensure_ros2_tools() {
    local tools=${SMILETRACK_SHARED:-$ROOT/../shared}/ros2-tools target=$ROOT/.venv-ros2-tools h
    if [[ ! -x $tools/install.sh ]]; then
        log "no $tools: the ROS 2 launch tools are not built (launch tests will skip)"
        return
    fi
    h=$(hash_of "$tools/install.sh" "$tools/sources.tar.gz" <(echo "$VENV"))
    if [[ -f $target/setup.sh && -f $target/.stamp && $(cat "$target/.stamp") == "$h" ]]; then return; fi
    log "building the ROS 2 launch / CLI tools into $target (about 1.5 min)"
    "$tools/install.sh" "$target" "$VENV"
    echo "$h" >"$target/.stamp"
}

ensure_system_tools
ensure_python_packages
ensure_vision_msgs
ensure_package
ensure_ros2_tools
log "environment ready: $VENV"
