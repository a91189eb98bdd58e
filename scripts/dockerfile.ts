/**
 * A Dockerfile read as data, for static checks without a Docker engine: instructions (continuation lines
 * joined, comments dropped) grouped into stages, plus the few argument shapes the checks need. Covers the
 * syntax images/ uses (the default `\` escape, no heredocs), not every Dockerfile.
 */

export interface Instruction {
  keyword: string;
  args: string;
  /** 1-based line the instruction starts on. */
  line: number;
}

export interface Stage {
  /** The base image (or stage) after FROM's flags, e.g. "node:${NODE_MAJOR}-bookworm-slim" or "tools". */
  base: string;
  /** Its `AS` name, when it has one. */
  name?: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM, with their defaults (undefined: none). */
  globalArgs: Map<string, string | undefined>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending: Instruction | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) return; // a comment, also between continuation lines
    if (!pending && line.trim() === '') return;
    const continues = line.endsWith('\\');
    const body = continues ? line.slice(0, -1) : line;
    if (pending) pending.args += ` ${body.trim()}`;
    else {
      const m = /^\s*(\S+)\s*(.*)$/.exec(body)!;
      pending = { keyword: m[1]!.toUpperCase(), args: m[2]!, line: i + 1 };
    }
    if (!continues) {
      pending.args = pending.args.trim();
      instructions.push(pending);
      pending = undefined;
    }
  });
  if (pending) instructions.push(pending);

  const globalArgs = new Map<string, string | undefined>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      stages.push({ base: words[0] ?? '', ...(words[1]?.toUpperCase() === 'AS' && words[2] ? { name: words[2] } : {}), instructions: [] });
    } else if (stages.length > 0) stages.at(-1)!.instructions.push(ins);
    else if (ins.keyword === 'ARG') for (const [k, v] of argDefinitions(ins.args)) globalArgs.set(k, v);
  }
  return { globalArgs, stages };
}

/** `ARG A=1 B` -> [["A", "1"], ["B", undefined]]. */
export function argDefinitions(args: string): [string, string | undefined][] {
  return args.split(/\s+/).filter(Boolean).map((w) => {
    const eq = w.indexOf('=');
    return eq < 0 ? [w, undefined] : [w.slice(0, eq), unquote(w.slice(eq + 1))];
  });
}

/** The key=value pairs of LABEL and ENV instructions, values unquoted (later ones win). */
export function keyValues(stage: Stage, keyword: 'LABEL' | 'ENV'): Map<string, string> {
  const out = new Map<string, string>();
  for (const ins of stage.instructions.filter((i) => i.keyword === keyword)) {
    for (const m of ins.args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) out.set(m[1]!, unquote(m[2]!));
  }
  return out;
}

/** COPY [--from=stage] [--chown=…] src… dest -> the stage (undefined: the build context), sources and destination. */
export function copies(stage: Stage): { from?: string; sources: string[]; dest: string; line: number }[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      return { ...(from ? { from } : {}), sources: paths.slice(0, -1), dest: paths.at(-1) ?? '', line: i.line };
    });
}

/** The JSON array of an exec-form ENTRYPOINT or CMD, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  try {
    const parsed: unknown = JSON.parse(args);
    return Array.isArray(parsed) && parsed.every((a) => typeof a === 'string') ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function unquote(value: string): string {
  return value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
}
