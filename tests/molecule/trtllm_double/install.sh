#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the TensorRT-LLM TEST DOUBLE of one recorded version into an image or a running node
# (see README.md). Re-running it with another version swaps the version in place.
# usage: install.sh VERSION SITE_PACKAGES EXAMPLES_DIR BIN_DIR [PYTHON]
#   VERSION: the tensorrt_llm version to report; its table is cli_tables/<0.7.1|0.9.0|1.2>.json
set -eu
version=$1 site=$2 examples=$3 bin=$4 python=${5:-python3}
here=$(cd "$(dirname "$0")" && pwd)
case $version in
  0.7.1) table=0.7.1 ;;
  0.9.0) table=0.9.0 ;;
  1.2.*) table=1.2 ;;
  *) echo "install.sh: no recorded table for tensorrt_llm $version (0.7.1, 0.9.0, 1.2.x)" >&2; exit 2 ;;
esac
rm -rf "$site/tensorrt_llm" "$site"/tensorrt_llm-*.dist-info "$site/mtrt_trtllm_cli_tables" \
       "$examples" "$bin/trtllm-build"
mkdir -p "$site" "$examples" "$bin"
cp -R "$here/tensorrt_llm" "$site/tensorrt_llm"
cp -R "$here/cli_tables" "$site/mtrt_trtllm_cli_tables"
printf '%s\n' "$table" > "$site/tensorrt_llm/_double_table"
info="$site/tensorrt_llm-$version.dist-info"
mkdir -p "$info"
printf 'Metadata-Version: 2.1\nName: tensorrt_llm\nVersion: %s\nSummary: TEST DOUBLE of TensorRT-LLM (mpi-trt-ansible molecule only)\n' \
  "$version" > "$info/METADATA"
printf 'mtrt-double\n' > "$info/INSTALLER"
: > "$info/RECORD"
cp "$here/examples/run.py" "$examples/run.py"
case $table in
  0.7.1)  # legacy: one build.py per family, as the real tree has them
    for family in chatglm llama gpt qwen; do
      mkdir -p "$examples/$family" && cp "$here/tools/build.py" "$examples/$family/build.py"
    done ;;
  0.9.0)  # each family's converter under examples/<family>, trtllm-build on PATH
    for family in chatglm llama gpt qwen; do
      mkdir -p "$examples/$family" && cp "$here/tools/convert_checkpoint.py" "$examples/$family/"
    done ;;
  1.2)    # under examples/models/core/<family>; ChatGLM2/3 convert with the glm-4-9b converter
    for family in glm-4-9b llama gpt qwen; do
      mkdir -p "$examples/models/core/$family" && cp "$here/tools/convert_checkpoint.py" "$examples/models/core/$family/"
    done ;;
esac
if [ "$table" != 0.7.1 ]; then
  printf '#!%s\nfrom tensorrt_llm.commands.build import main\nmain()\n' "$(command -v "$python")" > "$bin/trtllm-build"
  chmod 0755 "$bin/trtllm-build"
fi
