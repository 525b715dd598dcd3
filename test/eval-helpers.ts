// Shared by the eval tests: comparisons with the sklearn values of tools/fixtures-eval.py.
import type { EvalResult } from '../src/eval/index.js';

export const TOL = 1e-6;

/** Largest |ours - sklearn| seen (reported by the tests' logs). */
export const worst = { diff: 0, what: '' };

export function close(t: any, got: number | null | undefined, want: number | null | undefined, what: string): void {
  if (want === null || want === undefined) {
    t.true(got === null || got === undefined || Number.isNaN(got), `${what}: expected null, got ${got}`);
    return;
  }
  const d = typeof got === 'number' ? Math.abs(got - want) : Infinity;
  if (d > worst.diff) Object.assign(worst, { diff: d, what });
  t.true(d <= TOL, `${what}: got ${got}, sklearn ${want}`);
}

export function compareResult(t: any, r: EvalResult, e: Record<string, any>): void {
  t.deepEqual(r.classes, e.classes);
  t.is(r.images, e.images);
  t.deepEqual(r.positives, e.positives);
  e.auroc.forEach((v: number | null, j: number) => close(t, r.auroc[j], v, `${r.classes[j]} auroc`));
  e.auprc.forEach((v: number | null, j: number) => close(t, r.auprc[j], v, `${r.classes[j]} auprc`));
  for (const k of ['macro_auroc', 'micro_auroc', 'weighted_auroc', 'auprc_micro', 'auprc_macro'] as const)
    close(t, r[k], e[k], k);
  if (e.groups)
    for (const g of ['head', 'medium', 'tail'] as const) {
      t.deepEqual(r.groups![g].classes, e.groups[g].classes, `${g} classes`);
      close(t, r.groups![g].macro_auroc, e.groups[g].macro_auroc, `${g} auroc`);
      close(t, r.groups![g].macro_auprc, e.groups[g].macro_auprc, `${g} auprc`);
    }
  if (e.padchest20) {
    close(t, r.padchest20!.macro_auroc, e.padchest20.macro_auroc, 'padchest20 auroc');
    close(t, r.padchest20!.macro_auprc, e.padchest20.macro_auprc, 'padchest20 auprc');
    close(t, r.tail100!.macro_auroc, e.tail100.macro_auroc, 'tail100 auroc');
    close(t, r.tail100!.macro_auprc, e.tail100.macro_auprc, 'tail100 auprc');
    for (const [q, v] of Object.entries(e.query_auroc)) close(t, r.query_auroc![q], v as number, `${q} auroc`);
  }
  if (e.f1) {
    for (const k of ['micro', 'macro', 'weighted'] as const) close(t, r.f1![k], e.f1[k], `f1 ${k}`);
    e.f1.per_class.forEach((v: number, j: number) => close(t, r.f1!.per_class[j], v, `f1[${j}]`));
  }
  if (e.accuracy) {
    close(t, r.accuracy!.overall, e.accuracy.overall, 'accuracy');
    e.accuracy.per_class.forEach((v: number, j: number) => close(t, r.accuracy!.per_class[j], v, `accuracy[${j}]`));
  }
}

/**
 * Problems that keep `svg` from being a well-formed XML document (one root <svg>, every tag closed
 * in order, quoted attributes, no raw '<' or stray '&' in text); [] when there are none.
 */
export function svgProblems(svg: string): string[] {
  const problems: string[] = [];
  const body = svg.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let roots = 0;
  let at = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  const badText = (s: string) => /<|&(?!(?:amp|lt|gt|quot|#\d+);)/.test(s);
  while (at < body.length) {
    const lt = body.indexOf('<', at);
    const text = body.slice(at, lt < 0 ? body.length : lt);
    if (text.trim() && (stack.length === 0 || badText(text)))
      problems.push(`stray text at ${at}: ${text.slice(0, 40)}`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(body);
    if (!m) {
      problems.push(`malformed tag at ${lt}: ${body.slice(lt, lt + 60)}`);
      break;
    }
    const [, close, name, attrs, selfClose] = m;
    if (badText(attrs)) problems.push(`stray '&' in the attributes at ${lt}`);
    if (close) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> at ${lt} closes <${open ?? 'nothing'}>`);
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) roots++;
    at = tag.lastIndex;
  }
  if (stack.length) problems.push(`unclosed: ${stack.join(' > ')}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  if (!/^<svg[\s>]/.test(body)) problems.push('the root is not <svg>');
  return problems;
}

/** The `points` of each `<polyline class="curve">`, by its data-label, as [x, y] pairs. */
export function svgCurves(svg: string): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const m of svg.matchAll(/<polyline class="curve" data-label="([^"]*)"[^>]*? points="([^"]*)"/g))
    out.set(
      m[1],
      m[2].split(' ').map((p) => p.split(',').map(Number) as [number, number]),
    );
  return out;
}
