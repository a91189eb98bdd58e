/**
 * Finds secret values in text a product wrote (logs, CLI output, manifests,
 * status, Events, metrics). A secret counts as leaked in any of the forms it
 * could be written in: as is, base64 (a Secret's data, a header), URL-encoded
 * and JSON-escaped. Findings never carry the secret itself: the report shows
 * where it was, with the value masked, so a failing test does not leak it
 * into CI logs either.
 */

export interface Output {
  /** What produced the text, e.g. "runner log" or "manifest s3 db/shop/orders/backups/<id>/manifest.json". */
  source: string;
  text: string;
}

export interface Leak {
  source: string;
  /** The secret's label, never its value. */
  secret: string;
  form: string;
  /** Up to 40 characters either side, the secret replaced by `***`. */
  excerpt: string;
}

/** Forms a secret could take in written output. */
export function secretForms(value: string): { form: string; text: string }[] {
  const forms = new Map<string, string>([
    ['plain', value],
    ['base64', Buffer.from(value, 'utf8').toString('base64').replace(/=+$/, '')],
    ['url-encoded', encodeURIComponent(value)],
    ['json-escaped', JSON.stringify(value).slice(1, -1)],
  ]);
  const seen = new Set<string>();
  const out: { form: string; text: string }[] = [];
  for (const [form, text] of forms) {
    if (seen.has(text)) continue;
    seen.add(text);
    out.push({ form, text });
  }
  return out;
}

/**
 * Every occurrence of each secret (label -> value) in each output. Secrets
 * shorter than 8 characters are refused: they would match by chance and
 * make the check meaningless.
 */
export function findLeaks(secrets: Record<string, string>, outputs: readonly Output[]): Leak[] {
  const leaks: Leak[] = [];
  for (const [label, value] of Object.entries(secrets)) {
    if (value.length < 8) throw new Error(`secret "${label}" is shorter than 8 characters: too short to look for`);
    for (const { form, text: needle } of secretForms(value)) {
      for (const o of outputs) {
        for (let at = o.text.indexOf(needle); at >= 0; at = o.text.indexOf(needle, at + 1)) {
          const before = o.text.slice(Math.max(0, at - 40), at);
          const after = o.text.slice(at + needle.length, at + needle.length + 40);
          leaks.push({ source: o.source, secret: label, form, excerpt: `${before}***${after}` });
        }
      }
    }
  }
  return leaks;
}
