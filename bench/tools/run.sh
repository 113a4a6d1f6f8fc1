#!/bin/sh
# run.sh -- what a tool call (built-in, or an MCP server's over stdio) adds to an answer, beside
# the bare model round trip to the model stub measured in the same run.
# Usage: bench/tools/run.sh [N]   (BUILD=dir to reuse a build tree; default build-bench)
# The MCP rows need node and the reference server (`make mcp-server`); MR_MCP_EVERYTHING names
# its dist/index.js when it is not under build/tools/mcp.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
bench_release_tree bench_tools mr-model-stub
n=${1:-200}

entry=${MR_MCP_EVERYTHING:-$root/build/tools/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js}
if [ -f "$entry" ] && command -v node >/dev/null; then
    export MR_MCP_EVERYTHING="$entry"
else
    echo "(no MCP rows: node or $entry missing; make mcp-server installs the server)"
    unset MR_MCP_EVERYTHING
fi

bench_tmp tools
"$build/bench/tools/bench_tools" "$n" >"$tmp/tools.csv"
bare=$(awk -F, '$1 == "bare_round_trip" { print $3 }' "$tmp/tools.csv")
echo "milliseconds per operation, ${n} each, model stub on loopback (streamed)"
printf '%-28s %10s %12s\n' what ms vs-bare
while IFS=, read -r what count ms; do
    printf '%-28s %10.3f %12s\n' "$what" "$ms" "$(ratio "$ms" "$bare")"
done <"$tmp/tools.csv"
echo "(answer_with_one_tool_call: two model round trips and one todo dispatch, the stub's scripting"
echo " call subtracted; dispatch_alone: mr_tools_run of one call: thread, arguments, TODO.md read;"
echo " mcp_stdio_dispatch: mr_tools_run of everything__echo, a running node server over stdio;"
echo " mcp_stdio_four_side_by_side: one mr_tools_run of four such calls, all in flight on one pipe;"
echo " mcp_stdio_bare_call: the same call by mr_mcp_tool_call without the runner)"
