#!/usr/bin/env bash
# The machine-code table of docs/gpu.md: every ILGPU kernel compiled to PTX, assembled by NVIDIA's ptxas for sm_80 and
# sm_90, with registers, stack frame, spills, shared memory and the SASS mix (HMMA, LDL/STL, LDG), as markdown on stdout.
#   usage: tools/ptx-report.sh > table.md        (from the repository root; fetches ptxas into the user cache if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export TL_CUDA_BIN=${TL_CUDA_BIN:-$(tools/get-ptxas.sh)}
dotnet build -c Release perf/TensorLite.Perf -v q -nologo >&2
dotnet perf/TensorLite.Perf/bin/Release/net10.0/TensorLite.Perf.dll ptx-report
