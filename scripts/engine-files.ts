/**
 * The chart's shipped engines: for every tool of tools/index.ts with an image of its own, the DatabaseBackupEngine
 * spec the chart hands the controller (charts/db-backup-controller/engines/<name>.json; the chart adds the image
 * and the namespaces). Written by scripts/generate.ts, like the CRDs.
 */
import type { EngineSpec } from '../api/crds/engine.js';
import { TOOLS, type ShippedTool } from '../tools/index.js';

export const ENGINE_DIR = 'charts/db-backup-controller/engines';

/** The spec of a shipped tool's engine, without what the chart's values decide (image, allowedNamespaces). */
export function shippedEngineSpec(tool: ShippedTool): Omit<EngineSpec, 'image' | 'allowedNamespaces'> {
  const d = tool.definition;
  return {
    command: [...d.command],
    verbs: [...d.verbs],
    formats: d.formats.map((f) => ({ ...f, ...(f.magicHex ? { magicHex: [...f.magicHex] } : {}) })),
    ...(d.configSchema ? { configSchema: d.configSchema } : {}),
    ...(d.output ? { output: d.output } : {}),
    ...(d.locationTypes ? { locationTypes: [...d.locationTypes] } : {}),
    ...(tool.image ? { databases: [...tool.image.databases] } : {}),
  };
}

/** One file per tool with an image, in the order of TOOLS. */
export function renderEngineFiles(tools: Readonly<Record<string, ShippedTool>> = TOOLS): { path: string; text: string }[] {
  return Object.entries(tools)
    .filter(([, t]) => t.image)
    .map(([name, t]) => ({ path: `${ENGINE_DIR}/${name}.json`, text: `${JSON.stringify(shippedEngineSpec(t), null, 2)}\n` }));
}
