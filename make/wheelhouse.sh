#!/usr/bin/env bash
# The wheelhouse of another platform: `make wheelhouse IMAGE_PLATFORM=linux/arm64` runs
#   make/wheelhouse.sh PIP PLATFORM PYTHON_VERSION OUTPUT
# It builds the project's own wheel (pure Python) and downloads every dependency as a binary wheel for
# PLATFORM's architecture and CPython PYTHON_VERSION (`pip download --platform ... --only-binary=:all:`):
# nothing is compiled, so this machine's architecture does not matter. The manylinux tags listed are the
# ones a Debian bookworm image (glibc 2.36) runs.
set -euo pipefail
pip=$1 platform=$2 python_version=$3 output=$4
case "$platform" in
  linux/amd64) arch=x86_64 ;;
  linux/arm64 | linux/arm64/v8) arch=aarch64 ;;
  *) echo "wheelhouse: unsupported platform $platform (linux/amd64 or linux/arm64)" >&2; exit 2 ;;
esac
rm -rf "$output"
mkdir -p "$output"
"$pip" wheel --quiet --no-deps -w "$output" .
platforms=()
for tag in manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 manylinux_2_31 \
  manylinux_2_34 manylinux_2_35 manylinux_2_36; do
  platforms+=(--platform "${tag}_${arch}")
done
"$pip" download --quiet --only-binary=:all: "${platforms[@]}" --python-version "$python_version" \
  --implementation cp -d "$output" "$output"/lenses_hq_exporter-*.whl
