// Class prompts for the zero-shot calls: a {class: prompt} object (embedded once per call) or
// precomputed text embeddings that carry their class names (reusable across calls).
import { Tensor } from '../tensor.js';
import { parsePrompts } from '../text/index.js';
import type { TextEmbeddings } from '../model/types.js';
import type { ZeroShotModel } from './types.js';
import type { ClassTextEmbeddings, PromptsInput } from './types.js';

export interface ResolvedPrompts {
  classes: string[];
  texts: TextEmbeddings;
  /** True when embedded here (the caller disposes them). */
  owned: boolean;
}

export function isTextEmbeddings(v: unknown): v is TextEmbeddings {
  return (
    v !== null &&
    typeof v === 'object' &&
    (v as TextEmbeddings).sentence instanceof Tensor &&
    (v as TextEmbeddings).words instanceof Tensor
  );
}

/** Validates a prompts object: TypeError/RangeError naming the argument; returns classes and one prompt per class. */
export function checkPrompts(
  prompts: unknown,
  fn: string,
  onWarning?: (m: string) => void,
): { classes: string[]; prompts: string[] } {
  if (prompts === null || typeof prompts !== 'object' || Array.isArray(prompts))
    throw new TypeError(`${fn}: argument 'prompts' must be an object {class: prompt} or text embeddings with classes`);
  const entries = Object.entries(prompts as Record<string, unknown>);
  if (entries.length === 0) throw new RangeError(`${fn}: argument 'prompts' has no classes`);
  for (const [cls, v] of entries) {
    const ok = typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((p) => typeof p === 'string'));
    if (!ok)
      throw new TypeError(`${fn}: prompts[${JSON.stringify(cls)}] must be a string or a non-empty array of strings`);
  }
  // The prompt-file rules (first prompt of a list, warnings naming the class for extra prompts and
  // for prompts that clean to "", which are still scored the faithful way as [CLS] [SEP]).
  const set = parsePrompts(JSON.stringify(prompts), 'prompts', {
    onWarning: onWarning ?? ((m) => process.emitWarning(m, 'CarzeroPromptWarning')),
  });
  return { classes: set.classes, prompts: set.prompts };
}

export async function resolvePrompts(
  model: ZeroShotModel,
  prompts: PromptsInput | ClassTextEmbeddings | unknown,
  fn: string,
  onWarning?: (m: string) => void,
): Promise<ResolvedPrompts> {
  if (isTextEmbeddings(prompts)) {
    const classes = (prompts as Partial<ClassTextEmbeddings>).classes;
    if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string'))
      throw new TypeError(
        `${fn}: text embeddings given as 'prompts' need a 'classes' array of class names ` +
          '(model.embedTexts(prompts) returns one)',
      );
    if (classes.length !== prompts.count)
      throw new RangeError(`${fn}: prompts.classes has ${classes.length} names for ${prompts.count} text embeddings`);
    if (prompts.sentence.disposed)
      throw new TypeError(`${fn}: the text embeddings given as 'prompts' have been disposed`);
    return { classes: [...classes], texts: prompts, owned: false };
  }
  const checked = checkPrompts(prompts, fn, onWarning);
  const texts = await model.embedTexts(checked.prompts);
  return { classes: checked.classes, texts, owned: true };
}
