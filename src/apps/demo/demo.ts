// `carzero demo`: the whole CARZero loop on phantom chest X-rays, from nothing, on a CPU.
//
//  1. generate the phantom set (src/apps/demo/phantom.ts; cached by its options' hash);
//  2. build a word-level vocabulary from the training reports and a small random CARZero
//     (src/apps/demo/model.ts);
//  3. train it with the package's trainer (src/train/) on (image, report sentence) pairs;
//  4. zero-shot classify the held-out test split with prompts worded unlike any training sentence,
//     read the labels from the Open-I-format custom.csv, and write the per-class AUROC table,
//     ROC/PR plots, grounding overlays and the pointing game.
//
// Data choice (documented in README.md and docs/TRAINING.md): the trainer draws one sentence per
// report per step (spec 6). In the phantom reports over half of the sentences are negations ("no
// pneumothorax") or fillers that fit most images of a batch, and a model trained from scratch on
// them stays at chance. The demo therefore trains on the reports' finding sentences: its training
// CSV (train-findings.csv) keeps, per report, the sentences without a negation word
// (NOT_A_FINDING). A report with no such sentence (a normal study whose only lines are "no acute
// cardiopulmonary process" style negations) is left out of training and validation: with those
// pairs in, the first thing the model learned was one "abnormal vs normal" score shared by every
// finding sentence (the 8 prompts' zero-shot scores correlated at 0.9-1.0 across images), and
// the finding-specific part came later (measured, docs/TRAINING.md). Normal studies whose
// impression has no negation word ("the lungs are clear", "normal chest radiograph") stay in.
// Only the report text is read; the test split keeps all its images.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { csvField } from '../../data/csv.js';
import { reportSentences } from '../../data/mimic.js';
import {
  evaluate,
  formatResult,
  pointingGame,
  readLabels,
  writePlots,
  type PointingTrial,
  type ScoreTable,
} from '../../eval/index.js';
import { matrix } from '../../eval/metrics.js';
import { CarzeroError } from '../../errors.js';
import { CARZero } from '../../model/carzero.js';
import { cleanText } from '../../text/clean.js';
import { Trainer, type EpochInfo, type StepInfo } from '../../train/trainer.js';
import { createDemoModel, DEMO_MODEL_SIZE, type ModelSize } from './model.js';
import { boxToCrop, groundingOverlayPng } from './overlay.js';
import { generatePhantomSet, type PhantomImage, type PhantomIndex } from './phantom.js';
import { DEMO_CLASSES, type DemoClass } from './reports.js';
import type { BoxXY } from './render.js';

/** Zero-shot prompts: the reports' vocabulary (a model trained from scratch knows no other words),
 * never a training sentence (checked at run time against every cleaned training sentence), one
 * template for every class. A finding that has a side gets one prompt per side, and its class score
 * is the larger of the two (the finding is on the right or on the left): the phantom reports say
 * the side of every lateral finding, and the model learns "right pneumothorax" and "left
 * pneumothorax" as different things, so a prompt without a side matched neither well (chosen on
 * a separately seeded selection split, never the test split: docs/TRAINING.md). */
export const DEMO_ZERO_SHOT_PROMPTS: Readonly<Record<DemoClass, readonly string[]>> = Object.freeze({
  Atelectasis: sided('atelectasis'),
  Cardiomegaly: ['Findings consistent with cardiomegaly'],
  Effusion: sided('a', 'pleural effusion'),
  Mass: sided('a', 'lung mass'),
  Nodule: sided('a', 'lung nodule'),
  Opacity: sided('consolidation'),
  Pneumothorax: sided('a', 'pneumothorax'),
  Fracture: sided('a', 'rib fracture'),
});

function sided(...words: string[]): string[] {
  const [article, term] = words.length === 2 ? [`${words[0]} `, words[1]] : ['', words[0]];
  return ['right', 'left'].map((side) => `Findings consistent with ${article}${side} ${term}`);
}

/** The prompts as one flat {key: prompt} object (keys `Class` or `Class/k`) and each class's keys. */
export function flatPrompts(sets: Readonly<Record<string, readonly string[]>>): {
  prompts: Record<string, string>;
  keys: Record<string, string[]>;
} {
  const prompts: Record<string, string> = {};
  const keys: Record<string, string[]> = {};
  for (const [c, list] of Object.entries(sets)) {
    keys[c] = list.map((p, k) => {
      const key = list.length === 1 ? c : `${c}/${k + 1}`;
      prompts[key] = p;
      return key;
    });
  }
  return { prompts, keys };
}

/** A sentence that denies or is neutral (not a finding statement); on cleaned text. (The reports'
 * own NEGATION pattern also has "normal" and "clear", so it drops "heart size is normal" and "the
 * lungs are clear" as well; measured with it, the training sat at the chance loss for its whole
 * first epoch and the selection-split macro AUROC was 0.75 instead of 0.82, in 4314 steps instead
 * of 5366 as fewer reports remain: docs/TRAINING.md.) */
const NOT_A_FINDING = /\b(no|not|without|negative|sharp|unremarkable|intact)\b/;

export interface DemoProgress {
  update(done: number, total?: number, note?: string): void;
  end(): void;
}

export interface DemoOptions {
  /** Output folder (created). */
  out: string;
  device?: 'cpu' | 'cuda' | 'auto';
  seed?: number;
  /** Small and fast (tests): fewer images and epochs. */
  quick?: boolean;
  /** Phantom counts per split. */
  train?: number;
  validate?: number;
  test?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  /** Loader worker threads (default: the loader's). */
  workers?: number;
  /** Grounding overlays written (test images with a boxed finding). */
  overlays?: number;
  size?: Partial<ModelSize>;
  /** Experiments (tools/experiments/demo-select.ts): trainer config fields merged over the demo's. */
  trainer?: Record<string, unknown>;
  /** Experiments: the ViT position table's init (see src/apps/demo/model.ts). */
  posInit?: 'sincos' | 'normal';
  /** Experiments: the head's hidden ReLU layers' bias init (see src/apps/demo/model.ts). */
  headBias?: number;
  /** Experiments: also train on the normal studies' "no acute process" lines (default false). */
  normalPairs?: boolean;
  /** Experiments: evaluate on a separately generated split with this phantom seed (a selection
   * split for choosing settings, never the test split) instead of the test split. */
  selectionSeed?: number;
  /** A status line (default: none). */
  log?: (line: string) => void;
  /** A progress bar factory (default: none). */
  progress?: (label: string, total: number, unit: string) => DemoProgress;
}

export interface DemoSettings {
  seed: number;
  device: 'cpu' | 'cuda' | 'auto';
  train: number;
  validate: number;
  test: number;
  epochs: number;
  batch_size: number;
  lr: number;
  warmup_steps: number;
  phantom_size: [number, number];
  model: ModelSize;
}

export interface DemoResult {
  out: string;
  settings: DemoSettings;
  classes: string[];
  auroc: Record<string, number | null>;
  auprc: Record<string, number | null>;
  macro_auroc: number | null;
  pointing: { accuracy: number | null; hits: number; trials: number };
  /** Validation loss before and after training, and chance (2 ln N). */
  val_loss_initial: number;
  val_loss_final: number;
  chance_loss: number;
  history: { epoch: number; train_loss: number | null; val_loss: number }[];
  seconds: { data: number; train: number; evaluate: number; total: number };
  files: string[];
}

const FULL = { train: 16384, validate: 128, test: 512, epochs: 6, batch: 16 };
/** Quick mode (tests, a first look): 48 px crops of smaller phantoms, so each step is cheaper. */
const QUICK = { train: 2048, validate: 64, test: 160, epochs: 12, batch: 16 };
const QUICK_SIZE: Partial<ModelSize> = { image: 48, resize: 56 };

function checkInt(v: unknown, name: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
    throw new RangeError(`carzero demo: option '${name}' must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

export function demoSettings(o: DemoOptions): DemoSettings {
  if (typeof o.out !== 'string' || !o.out) throw new TypeError("carzero demo: option 'out' must be a folder path");
  const d = o.quick ? QUICK : FULL;
  const device = o.device ?? 'cpu';
  if (!['cpu', 'cuda', 'auto'].includes(device))
    throw new RangeError(`carzero demo: option 'device' must be cpu, cuda or auto, got ${String(device)}`);
  const s: DemoSettings = {
    seed: checkInt(o.seed ?? 0, 'seed', 0),
    device,
    train: checkInt(o.train ?? d.train, 'train', 64),
    validate: checkInt(o.validate ?? d.validate, 'validate', 8),
    test: checkInt(o.test ?? d.test, 'test', 16),
    epochs: checkInt(o.epochs ?? d.epochs, 'epochs', 1),
    batch_size: checkInt(o.batchSize ?? d.batch, 'batchSize', 2),
    lr: o.lr ?? 1e-3,
    warmup_steps: 0,
    phantom_size: [0, 0],
    model: { ...DEMO_MODEL_SIZE, ...(o.quick ? QUICK_SIZE : {}), ...(o.size ?? {}) },
  };
  if (!(typeof s.lr === 'number' && s.lr > 0 && s.lr < 1))
    throw new RangeError(`carzero demo: option 'lr' must be a number in (0, 1), got ${String(o.lr)}`);
  if (s.batch_size > s.train)
    throw new RangeError(
      `carzero demo: option 'batchSize' (${s.batch_size}) is larger than the training set (${s.train})`,
    );
  if (s.batch_size > s.validate)
    throw new RangeError(
      `carzero demo: option 'validate' (${s.validate}) must hold at least one batch of ${s.batch_size}`,
    );
  // Phantoms rendered at about the model's padded size (the generator's minimum is 64 px).
  const lo = Math.max(64, s.model.resize);
  s.phantom_size = [lo, lo + (o.quick ? 8 : 16)];
  return s;
}

/** Training CSV of finding sentences (see the file comment; `normalPairs` keeps the reports
 * without one, with all their sentences); returns its path and vocabulary. */
async function findingsCsv(dataDir: string, images: PhantomImage[], file: string, normalPairs: boolean) {
  const lines = ['Path,Split,ViewPosition,Report Impression'];
  const words = new Set<string>();
  const trainSentences = new Set<string>();
  let kept = 0;
  let all = 0;
  let reports = 0;
  for (const im of images) {
    if (im.view === 'LATERAL') continue;
    const ss = reportSentences(im.report, 0);
    const findings = ss.filter((s) => !NOT_A_FINDING.test(s));
    const use = findings.length ? findings : ss;
    if (im.split === 'train') all += ss.length;
    if (!findings.length && !normalPairs && im.split !== 'test') continue;
    if (im.split === 'train') {
      reports++;
      kept += use.length;
      for (const s of use) {
        trainSentences.add(s);
        for (const w of s.split(' ')) words.add(w);
      }
    }
    lines.push([im.file, im.split, im.view, use.map((s) => `${s}.`).join(' ')].map(csvField).join(','));
  }
  await writeFile(file, lines.join('\n') + '\n');
  return { file, root: dataDir, words, trainSentences, kept, all, reports };
}

function fmt(v: number | null | undefined, d = 4): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d);
}

export interface ZeroShotEvaluation {
  classes: string[];
  /** The evaluation result (AUROC, AUPRC, pointing game) as eval/ formats it. */
  r: ReturnType<typeof evaluate>['result'];
  pg: ReturnType<typeof pointingGame>;
  /** The printed table (auroc.txt). */
  text: string;
  files: string[];
}

/** Step 4 of the demo, shared by the training run and `--pretrained`: zero-shot scores of the test
 * split of a phantom set with the demo prompts, labels from its custom.csv, the AUROC table, plots,
 * pointing game and overlays, written to `out`. */
export async function evaluateZeroShot(args: {
  model: CARZero;
  out: string;
  evalDir: string;
  index: PhantomIndex;
  overlays?: number;
  bar: (label: string, total: number, unit: string) => DemoProgress;
}): Promise<ZeroShotEvaluation> {
  const { model, out, evalDir, bar } = args;
  const files: string[] = [];
  const test = args.index.images.filter((im) => im.split === 'test');
  const classes = [...DEMO_CLASSES];
  const C = classes.length;
  const scores = matrix(test.length, C);
  const maps: Float32Array[] = [];
  const pixels: Float32Array[] = [];
  const crop = model.config.preprocess.crop;
  const flat = flatPrompts(DEMO_ZERO_SHOT_PROMPTS);
  const keyIndex = Object.keys(flat.prompts);
  const pEval = bar('  scoring', test.length, 'images');
  try {
    for await (const r of model.groundingStream({
      images: test.map((im) => join(evalDir, im.file)),
      prompts: flat.prompts,
      onProgress: (p) => pEval.update(p.done),
    })) {
      if ('error' in r) throw new Error(`${r.name}: ${r.error.message}`);
      // a class's score: the largest of its prompts' scores; its map: that prompt's map
      const m = new Float32Array(C * crop * crop);
      classes.forEach((c, j) => {
        let best = -1;
        for (const key of flat.keys[c]) {
          const q = keyIndex.indexOf(key);
          if (best < 0 || r.scores[q] > r.scores[best]) best = q;
        }
        scores.data[r.index * C + j] = r.scores[best];
        m.set(r.maps.subarray(best * crop * crop, (best + 1) * crop * crop), j * crop * crop);
      });
      maps[r.index] = m;
      pixels[r.index] = r.pixels;
    }
  } finally {
    pEval.end();
  }
  // class -> its prompts (score: the largest)
  await writeFile(join(out, 'prompts.json'), JSON.stringify(DEMO_ZERO_SHOT_PROMPTS, null, 2) + '\n');
  const scoreLines = [['Path', ...classes].join(',')];
  test.forEach((im, i) =>
    scoreLines.push(
      [csvField(im.file), ...Array.from(scores.data.subarray(i * C, (i + 1) * C), (v) => v.toPrecision(7))].join(','),
    ),
  );
  await writeFile(join(out, 'scores.csv'), scoreLines.join('\n') + '\n');
  files.push(join(out, 'prompts.json'), join(out, 'scores.csv'));

  // Labels from the Open-I-format file the phantom set writes (custom.csv), restricted to the
  // demo's 8 classes (the other 10 Open-I classes never occur).
  const customFile = join(evalDir, 'custom.csv');
  const openi = readLabels('openi', await readFile(customFile, 'utf8'), customFile);
  const cols = classes.map((c) => openi.classes.indexOf(c));
  const labels8 = new Float64Array(openi.rows * C);
  for (let r = 0; r < openi.rows; r++)
    cols.forEach((j, k) => (labels8[r * C + k] = openi.labels[r * openi.classes.length + j]));
  const set = { ...openi, classes, labels: labels8 };
  const table: ScoreTable = {
    classes,
    names: test.map((im) => im.file),
    scores,
    positions: test.map((_, i) => i),
    listLength: test.length,
    file: 'scores.csv',
    warnings: [],
  };

  // Pointing game: every (test image, finding) with a box; hit when the map's maximum is in it.
  const trials: PointingTrial[] = [];
  const geometry = (im: PhantomImage) => ({
    width: im.width,
    height: im.height,
    resize: model.config.preprocess.resize,
    crop,
  });
  test.forEach((im, i) => {
    for (const b of im.boxes) {
      const k = classes.indexOf(b.cls);
      trials.push({
        classIndex: k,
        map: maps[i].subarray(k * crop * crop, (k + 1) * crop * crop),
        mapSize: crop,
        boxes: [{ x1: b.box[0], y1: b.box[1], x2: b.box[2], y2: b.box[3] }],
        geometry: geometry(im),
      });
    }
  });
  const pg = pointingGame(trials, C);
  const ev = evaluate(set, table, customFile, pg);
  const r = ev.result;
  r.title = 'Phantom test split (zero-shot)';
  const text = formatResult(r);
  await writeFile(join(out, 'auroc.txt'), text);
  await writeFile(join(out, 'auroc.json'), JSON.stringify(r, null, 2) + '\n');
  const csvLines = ['class,positives,auroc,auprc,pointing_hits,pointing_trials'];
  classes.forEach((c, j) =>
    csvLines.push(
      [c, r.positives[j], fmt(r.auroc[j]), fmt(r.auprc[j]), pg.perClass[j].hits, pg.perClass[j].trials].join(','),
    ),
  );
  csvLines.push(['macro', '', fmt(r.macro_auroc), fmt(r.auprc_macro), pg.hits, pg.trials].join(','));
  await writeFile(join(out, 'auroc.csv'), csvLines.join('\n') + '\n');
  files.push(join(out, 'auroc.txt'), join(out, 'auroc.json'), join(out, 'auroc.csv'));
  files.push(...(await writePlots(out, ev)));

  // Overlays: the first test images with each class's box (a few per class).
  const ovDir = join(out, 'overlays');
  await rm(ovDir, { recursive: true, force: true });
  await mkdir(ovDir, { recursive: true });
  const perClass = Math.max(1, Math.ceil((args.overlays ?? 16) / C));
  const count = new Map<string, number>();
  const { mean, std } = model.config.preprocess;
  for (let i = 0; i < test.length; i++) {
    const im = test[i];
    for (const b of im.boxes) {
      if ((count.get(b.cls) ?? 0) >= perClass) continue;
      count.set(b.cls, (count.get(b.cls) ?? 0) + 1);
      const k = classes.indexOf(b.cls);
      const box: BoxXY = boxToCrop(b.box, geometry(im));
      const png = groundingOverlayPng(pixels[i], maps[i].subarray(k * crop * crop, (k + 1) * crop * crop), [box], {
        mean,
        std,
        zoom: 4,
      });
      const f = join(ovDir, `${im.id}-${b.cls.toLowerCase()}.png`);
      await writeFile(f, png);
      files.push(f);
    }
  }
  return { classes, r, pg, text, files };
}

/** Runs the demo (see the file comment). */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const s = demoSettings(options);
  const log = options.log ?? (() => undefined);
  const bar = options.progress ?? (() => ({ update() {}, end() {} }));
  const out = resolve(options.out);
  const files: string[] = [];
  await mkdir(out, { recursive: true });

  // ---- 1. data
  const dataDir = join(out, 'data');
  const nImages = s.train + s.validate + s.test;
  log(`[1/4] phantom chest X-rays: ${s.train} train, ${s.validate} validation, ${s.test} test (${dataDir})`);
  let genDone = 0;
  const pGen = bar('  generating', nImages, 'images');
  const ph = await generatePhantomSet({
    out: dataDir,
    seed: s.seed + 1,
    train: s.train,
    validate: s.validate,
    test: s.test,
    size: s.phantom_size,
    lateral: 0.01,
    onImage: () => pGen.update(++genDone),
  });
  pGen.end();
  log(ph.cached ? '  found the cached set' : `  generated in ${ph.seconds.toFixed(1)} s`);
  const csv = await findingsCsv(
    dataDir,
    ph.index.images,
    join(dataDir, 'train-findings.csv'),
    options.normalPairs ?? false,
  );
  log(
    `  training text: ${csv.kept} finding sentences of ${csv.all} report sentences, ` +
      `from the ${csv.reports} reports that have one ` +
      '(negations, fillers and "no acute process" reports left out; see README)',
  );
  const tData = performance.now();

  // ---- 2. model
  for (const [c, list] of Object.entries(DEMO_ZERO_SHOT_PROMPTS))
    for (const p of list)
      if (csv.trainSentences.has(cleanText(p))) throw new Error(`demo prompt for ${c} ('${p}') is a training sentence`);
  const modelDir = join(out, 'model-init');
  await rm(modelDir, { recursive: true, force: true });
  const m = await createDemoModel({
    dir: modelDir,
    words: csv.words,
    size: s.model,
    seed: s.seed,
    posInit: options.posInit,
    headBias: options.headBias,
  });
  const mv = s.model;
  log(
    `[2/4] model from scratch: ViT ${mv.image}px/${mv.patch}px patches, width ${mv.width}, ${mv.visionDepth} layers; ` +
      `BERT ${mv.textDepth} layers, word vocabulary of ${m.vocabulary}; head ${mv.headDepth} layers; ` +
      `${(m.parameters / 1e6).toFixed(2)} M parameters`,
  );

  // ---- 3. training
  const runDir = join(out, 'run');
  await rm(runDir, { recursive: true, force: true });
  const stepsPerEpoch = Math.floor(csv.reports / s.batch_size);
  // Warm-up: a tenth of the steps, at most 500. With 100 steps the scores collapsed to a constant
  // (gradient norm ~0.02) within the first ~200 steps and recovered only after ~500-850; with 500
  // they do not (docs/TRAINING.md).
  s.warmup_steps = Math.min(500, Math.round((stepsPerEpoch * s.epochs) / 10));
  const config = {
    model: modelDir,
    // on the CPU the loader decodes in this thread: a loader thread competes with the native
    // kernels' threads for the cores (measured 65 vs 59 ms a step on 2 cores)
    data: { csv: csv.file, root: dataDir, max_words: 0, workers: options.workers ?? (s.device === 'cpu' ? 0 : null) },
    device: s.device,
    seed: s.seed,
    epochs: s.epochs,
    batch_size: s.batch_size,
    validation_batch_size: s.batch_size,
    optimizer: { name: 'adamw', lr: s.lr, weight_decay: 0.01, betas: [0.9, 0.999] },
    scheduler: { name: 'cosine', warmup_steps: s.warmup_steps },
    clip_grad_norm: 1,
    early_stopping_patience: 0,
    augment: false,
    dropout: false,
    log_every: 10,
  };
  for (const [k, v] of Object.entries(options.trainer ?? {})) {
    const cur = (config as Record<string, unknown>)[k];
    (config as Record<string, unknown>)[k] =
      cur && typeof cur === 'object' && !Array.isArray(cur) && v && typeof v === 'object' && !Array.isArray(v)
        ? { ...cur, ...v }
        : v;
  }
  let pTrain: DemoProgress | null = null;
  let epochNo = 0;
  const tr = await Trainer.create(config, runDir, {
    onStep: (st: StepInfo) => {
      pTrain ??= bar(`  epoch ${epochNo + 1}/${s.epochs}`, stepsPerEpoch, 'steps');
      pTrain.update(st.batch + 1, stepsPerEpoch, `loss ${st.loss.toFixed(3)}`);
    },
    onEpoch: (e: EpochInfo) => {
      pTrain?.end();
      pTrain = null;
      epochNo = e.epoch + 1;
      log(
        `  epoch ${e.epoch + 1}/${s.epochs}: train loss ${fmt(e.train_loss, 3)}, ` +
          `validation loss ${fmt(e.val_loss, 3)} (chance ${chance.toFixed(3)})`,
      );
    },
  });
  const chance = 2 * Math.log(s.batch_size);
  log(
    `[3/4] training on ${tr.model.device.kind}: ${s.epochs} epochs x ${stepsPerEpoch} steps of ${s.batch_size} ` +
      '(image, sentence) pairs',
  );
  const v0 = await tr.validate();
  log(`  validation loss before training ${v0.loss.toFixed(3)} (chance 2 ln ${s.batch_size} = ${chance.toFixed(3)})`);
  let result;
  try {
    result = await tr.run();
  } finally {
    await tr.close();
  }
  const tTrain = performance.now();

  // ---- 4. zero-shot evaluation on the test split
  log('[4/4] zero-shot classification of the held-out test split');
  const model = await CARZero.load(join(runDir, 'last'), { device: s.device });
  let evalDir = dataDir;
  let evalIndex = ph.index;
  if (options.selectionSeed !== undefined) {
    evalDir = join(out, `select-${options.selectionSeed}`);
    const sel = await generatePhantomSet({
      out: evalDir,
      seed: options.selectionSeed,
      train: 0,
      validate: 0,
      test: s.test,
      size: s.phantom_size,
      lateral: 0,
    });
    evalIndex = sel.index;
    log(`  selection split: ${s.test} phantoms of seed ${options.selectionSeed} (${evalDir}), not the test split`);
  }
  let ev: ZeroShotEvaluation;
  try {
    ev = await evaluateZeroShot({ model, out, evalDir, index: evalIndex, overlays: options.overlays, bar });
  } finally {
    model.dispose();
  }
  files.push(...ev.files);
  const { r, pg, text, classes } = ev;
  const tEval = performance.now();

  const res: DemoResult = {
    out,
    settings: s,
    classes,
    auroc: Object.fromEntries(classes.map((c, j) => [c, r.auroc[j]])),
    auprc: Object.fromEntries(classes.map((c, j) => [c, r.auprc[j]])),
    macro_auroc: r.macro_auroc,
    pointing: { accuracy: r.pointing?.accuracy ?? null, hits: pg.hits, trials: pg.trials },
    val_loss_initial: v0.loss,
    val_loss_final: result.history.at(-1)?.val_loss ?? NaN,
    chance_loss: chance,
    history: result.history.map((h) => ({ epoch: h.epoch, train_loss: h.train_loss, val_loss: h.val_loss })),
    seconds: {
      data: (tData - t0) / 1000,
      train: (tTrain - tData) / 1000,
      evaluate: (tEval - tTrain) / 1000,
      total: (performance.now() - t0) / 1000,
    },
    files,
  };
  await writeFile(join(out, 'summary.json'), JSON.stringify(res, null, 2) + '\n');
  files.push(join(out, 'summary.json'));
  log('');
  log(text.trimEnd());
  log('');
  log(
    `done in ${res.seconds.total.toFixed(0)} s (data ${res.seconds.data.toFixed(0)} s, ` +
      `training ${res.seconds.train.toFixed(0)} s, evaluation ${res.seconds.evaluate.toFixed(0)} s)`,
  );
  log(`results, plots (roc.svg, pr.svg) and grounding overlays (overlays/) are in ${out}`);
  return res;
}

// ---- the shipped model: `carzero demo --save-model <dir>` writes it, `--pretrained` uses it

/** The demo prompts as flat {key: prompt} for `carzero classify` (one column per side). */
export function classifyPrompts(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [c, list] of Object.entries(DEMO_ZERO_SHOT_PROMPTS)) {
    if (list.length === 1) out[c] = list[0];
    else list.forEach((p, k) => (out[`${c} (${['right', 'left'][k] ?? k + 1})`] = p));
  }
  return out;
}

/** demo.json of a saved demo model: how it was trained and what it reached. */
export interface SavedDemoRecord {
  format: 'carzero-demo-model';
  format_version: 1;
  command: string;
  carzero_version: string;
  date: string;
  settings: DemoSettings;
  results: Pick<
    DemoResult,
    'macro_auroc' | 'auroc' | 'auprc' | 'pointing' | 'val_loss_initial' | 'val_loss_final' | 'chance_loss'
  >;
  /** The demo's class prompts ({class: [prompts]}, a class scores the larger). */
  demo_prompts: Record<string, readonly string[]>;
  seconds: DemoResult['seconds'];
}

const SAVED_MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

/** Copies the trained model of a finished demo run (its `run/last`) with prompts.json, demo.json
 * and a manifest into `dest` (the shipped `weights/phantom-demo/` is made this way). */
export async function saveDemoModel(res: DemoResult, dest: string, command: string): Promise<string[]> {
  const { copyFile, realpath } = await import('node:fs/promises');
  const { packageVersion, writeManifest } = await import('../../model/store.js');
  const src = await realpath(join(res.out, 'run', 'last'));
  await mkdir(dest, { recursive: true });
  await rm(join(dest, '.verified.json'), { force: true });
  for (const f of SAVED_MODEL_FILES) await copyFile(join(src, f), join(dest, f));
  await writeFile(join(dest, 'prompts.json'), `${JSON.stringify(classifyPrompts(), null, 2)}\n`);
  const record: SavedDemoRecord = {
    format: 'carzero-demo-model',
    format_version: 1,
    command,
    carzero_version: packageVersion(),
    date: new Date().toISOString().slice(0, 10),
    settings: res.settings,
    results: {
      macro_auroc: res.macro_auroc,
      auroc: res.auroc,
      auprc: res.auprc,
      pointing: res.pointing,
      val_loss_initial: res.val_loss_initial,
      val_loss_final: res.val_loss_final,
      chance_loss: res.chance_loss,
    },
    demo_prompts: DEMO_ZERO_SHOT_PROMPTS,
    seconds: res.seconds,
  };
  await writeFile(join(dest, 'demo.json'), `${JSON.stringify(record, null, 2)}\n`);
  const all = [...SAVED_MODEL_FILES, 'prompts.json', 'demo.json'];
  await writeManifest(dest, all, { trained_by: command, run: basename(src) }, record.carzero_version);
  return [...all, 'manifest.json'].map((f) => join(dest, f));
}

export interface PretrainedDemoOptions {
  out: string;
  /** A model name or directory saved by `--save-model` (default 'phantom-demo', the shipped one). */
  model?: string;
  device?: 'cpu' | 'cuda' | 'auto';
  log?: (line: string) => void;
  progress?: (label: string, total: number, unit: string) => DemoProgress;
}

export interface PretrainedDemoResult {
  out: string;
  model: string;
  classes: string[];
  auroc: Record<string, number | null>;
  auprc: Record<string, number | null>;
  macro_auroc: number | null;
  /** What demo.json recorded when the model was trained (the same test split). */
  recorded_macro_auroc: number | null;
  pointing: { accuracy: number | null; hits: number; trials: number };
  seconds: { data: number; evaluate: number; total: number };
  files: string[];
}

/** `carzero demo --pretrained`: the held-out test split of the phantom set the shipped model was
 * trained beside (rendered again from its seed), classified zero-shot with that model. */
export async function runPretrainedDemo(options: PretrainedDemoOptions): Promise<PretrainedDemoResult> {
  const t0 = performance.now();
  if (typeof options.out !== 'string' || !options.out)
    throw new TypeError("carzero demo: option 'out' must be a folder path");
  const { resolveModel } = await import('../../model/store.js');
  const log = options.log ?? (() => undefined);
  const bar = options.progress ?? (() => ({ update() {}, end() {} }));
  const out = resolve(options.out);
  const files: string[] = [];
  await mkdir(out, { recursive: true });
  const m = resolveModel(options.model ?? 'phantom-demo');
  const recFile = join(m.dir, 'demo.json');
  let rec: SavedDemoRecord;
  try {
    rec = JSON.parse(await readFile(recFile, 'utf8')) as SavedDemoRecord;
  } catch (e) {
    throw new CarzeroError(
      `${recFile}: cannot read the demo record (${(e as Error).message}); ` +
        '--pretrained needs a model saved by `carzero demo --save-model`',
      'CZ_ERR_IO',
    );
  }
  if (rec.format !== 'carzero-demo-model' || rec.format_version !== 1 || !rec.settings)
    throw new CarzeroError(`${recFile}: not a carzero demo record`, 'CZ_ERR_FORMAT');
  const s = rec.settings;
  const dataDir = join(out, 'data-test');
  log(`[1/2] the phantom test split the model was trained beside: ${s.test} images (seed ${s.seed + 1}; ${dataDir})`);
  let genDone = 0;
  const pGen = bar('  generating', s.test, 'images');
  const ph = await generatePhantomSet({
    out: dataDir,
    seed: s.seed + 1,
    train: 0,
    validate: 0,
    test: s.test,
    size: s.phantom_size,
    lateral: 0,
    onImage: () => pGen.update(++genDone),
  });
  pGen.end();
  const tData = performance.now();
  log(`[2/2] zero-shot classification with ${m.name ?? m.dir} (${m.dir})`);
  const model = await CARZero.load(m.dir, { device: options.device ?? 'cpu' });
  let ev: ZeroShotEvaluation;
  try {
    ev = await evaluateZeroShot({ model, out, evalDir: dataDir, index: ph.index, bar });
  } finally {
    model.dispose();
  }
  files.push(...ev.files);
  const tEval = performance.now();
  const { r, pg, classes } = ev;
  const res: PretrainedDemoResult = {
    out,
    model: m.dir,
    classes,
    auroc: Object.fromEntries(classes.map((c, j) => [c, r.auroc[j]])),
    auprc: Object.fromEntries(classes.map((c, j) => [c, r.auprc[j]])),
    macro_auroc: r.macro_auroc,
    recorded_macro_auroc: rec.results.macro_auroc,
    pointing: { accuracy: r.pointing?.accuracy ?? null, hits: pg.hits, trials: pg.trials },
    seconds: { data: (tData - t0) / 1000, evaluate: (tEval - tData) / 1000, total: (performance.now() - t0) / 1000 },
    files,
  };
  await writeFile(join(out, 'summary.json'), JSON.stringify(res, null, 2) + '\n');
  files.push(join(out, 'summary.json'));
  // (the table itself is the caller's to print: auroc.txt; the CLI writes it to stdout)
  const where = `results, plots (roc.svg, pr.svg) and grounding overlays (overlays/) are in ${out}`;
  log(`done in ${res.seconds.total.toFixed(1)} s; ${where}`);
  return res;
}
