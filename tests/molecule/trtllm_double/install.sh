#!/bin/sh
# Install the TensorRT-LLM TEST DOUBLE into a test image (see README.md).
# usage: install.sh VERSION SITE_PACKAGES EXAMPLES_DIR BIN_DIR [PYTHON]
set -eu
version=$1 site=$2 examples=$3 bin=$4 python=${5:-python3}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$site" "$examples/chatglm" "$bin"
rm -rf "$site/tensorrt_llm" "$site"/tensorrt_llm-*.dist-info
cp -R "$here/tensorrt_llm" "$site/tensorrt_llm"
info="$site/tensorrt_llm-$version.dist-info"
mkdir -p "$info"
printf 'Metadata-Version: 2.1\nName: tensorrt_llm\nVersion: %s\nSummary: TEST DOUBLE of TensorRT-LLM (mpi-trt-ansible molecule only)\n' \
  "$version" > "$info/METADATA"
printf 'mtrt-double\n' > "$info/INSTALLER"
: > "$info/RECORD"
cp "$here/examples/run.py" "$examples/run.py"
case $version in
  0.7.*)  # legacy: per-family build.py, no trtllm-build
    cp "$here/examples/chatglm/build.py" "$examples/chatglm/build.py" ;;
  *)      # 0.8+: convert_checkpoint.py + trtllm-build
    cp "$here/examples/chatglm/convert_checkpoint.py" "$examples/chatglm/"
    printf '#!%s\nfrom tensorrt_llm.commands.build import main\nmain()\n' \
      "$(command -v "$python")" > "$bin/trtllm-build"
    chmod 0755 "$bin/trtllm-build" ;;
esac
