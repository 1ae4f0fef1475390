#!/usr/bin/env bash
# Run where pip reaches PyPI, from the repository root, with the project's environment active
# (README set-up): downloads into .whl/ (git-ignored) the CPython 3.12 x86-64 wheels of every
# ROS 2 and runtime package that a lent GPU machine lacks, at the versions installed here, for
# tools/gpu/run.sh. The GPU image brings its own torch, numpy, opencv, onnx and onnxruntime.
set -euo pipefail
mkdir -p .whl
platforms=()
for n in 17 24 27 28 31 34 35 39; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
# The ROS wheels and the runtime packages the GPU image has no copy of, pinned as installed here.
# (ament's linters are build-time only.)
wanted=$(python -m pip list --format=freeze | grep -i -E '^(ros-|rosbags=|cityscapesscripts=|ruamel|pyquaternion=|appdirs=|lz4=|zstandard=|coloredlogs=|humanfriendly=)' \
    | grep -v -i '^ros-ament-cmake-')
missing=()
for requirement in $wanted; do
    if ! python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl "$requirement" 2>/dev/null; then
        missing+=("$requirement")
    fi
done
# Build-time-only packages (message generators' empy, lark) have no wheel; nothing runs them there.
[ ${#missing[@]} -eq 0 ] || echo "no cp312 wheel (skipped): ${missing[*]}"
# What a device call sends: the tracked files and these wheels, 64 MiB at most.
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
wheels=$(du -sb .whl | cut -f1)
echo "wheels $((wheels / 1048576)) MiB + repository $((tracked / 1048576)) MiB of the 64 MiB a device call carries"
((tracked + wheels <= 64 * 1048576)) || { echo "too large to carry: drop wheels the run does not need" >&2; exit 1; }
