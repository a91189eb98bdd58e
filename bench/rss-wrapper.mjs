// Runs the built CLI in this process and reports its peak resident set size
// on stderr as the last line: {"maxRssKiB": N}. Used by the benchmarks only.
const { main } = await import('../dist/runner/cli/main.js');
const code = await main(process.argv.slice(2));
process.stderr.write(`\n${JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS })}\n`);
process.exitCode = code;
