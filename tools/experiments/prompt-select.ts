// Zero-shot AUROC of a trained demo model on a selection split under prompt templates (one
// template for every class) and, as a diagnostic of the image side only, an average over many
// training-like sentences per class. Usage:
//   npx tsx tools/experiments/prompt-select.ts <model dir> <selection phantom dir>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CARZero } from '../../src/model/carzero.js';
import { rocAuc } from '../../src/eval/metrics.js';
import { DEMO_CLASSES, positiveSentence, type DemoClass } from '../../src/apps/demo/reports.js';
import { Rng } from '../../src/data/rng.js';

const [dir, data] = process.argv.slice(2);
const idx = JSON.parse(readFileSync(join(data, 'phantom.json'), 'utf8'));
const test = idx.images.filter((i: { split: string }) => i.split === 'test');
const TERM: Record<DemoClass, [string, string]> = {
  Atelectasis: ['atelectasis', 'atelectasis'],
  Cardiomegaly: ['cardiomegaly', 'cardiomegaly'],
  Effusion: ['pleural effusion', 'a pleural effusion'],
  Mass: ['lung mass', 'a lung mass'],
  Nodule: ['lung nodule', 'a lung nodule'],
  Opacity: ['consolidation', 'consolidation'],
  Pneumothorax: ['pneumothorax', 'a pneumothorax'],
  Fracture: ['rib fracture', 'a rib fracture'],
};
const T: Record<string, (c: DemoClass) => string> = {
  findings_consistent: (c) => `Findings consistent with ${TERM[c][1]}`,
  there_is: (c) => `There is ${TERM[c][1]}`,
  is_seen: (c) => `${TERM[c][0]} is seen`,
  evidence_of: (c) => `Evidence of ${TERM[c][1]}`,
  present: (c) => `${TERM[c][0]} present`,
};
const model = await CARZero.load(dir, { device: 'cpu' });
const images = test.map((im: { file: string }) => join(data, im.file));
const auc = (scores: ArrayLike<number>[], col: (c: DemoClass) => number) =>
  DEMO_CLASSES.map((c, j) =>
    rocAuc(
      test.map((im: { labels: number[] }) => im.labels[j]),
      scores.map((s) => s[col(c)]),
    ),
  );
const show = (name: string, a: number[]) =>
  console.log(
    `${name.padEnd(20)} macro ${(a.reduce((x, y) => x + y, 0) / a.length).toFixed(3)}  ` +
      DEMO_CLASSES.map((c, j) => `${c.slice(0, 5)} ${a[j].toFixed(3)}`).join(' '),
  );
for (const [name, f] of Object.entries(T)) {
  const prompts = Object.fromEntries(DEMO_CLASSES.map((c) => [c, f(c)]));
  const r = await model.classify({ images, prompts });
  show(
    name,
    auc(r.scores, (c) => r.classes.indexOf(c)),
  );
}
// diagnostic: mean score over 24 generated positive sentences per class (training-like wording)
const K = 24;
const rng = new Rng(123);
const prompts: Record<string, string> = {};
for (const c of DEMO_CLASSES)
  for (let k = 0; k < K; k++)
    prompts[`${c}#${k}`] = positiveSentence(
      {
        cls: c,
        side: (['right', 'left'] as const)[k % 2],
        zone: (['upper', 'mid', 'lower'] as const)[k % 3],
        number: 6,
      },
      rng,
    );
const r = await model.classify({ images, prompts });
const mean = r.scores.map((s) =>
  DEMO_CLASSES.map((c) => {
    let t = 0;
    for (let k = 0; k < K; k++) t += s[r.classes.indexOf(`${c}#${k}`)];
    return t / K;
  }),
);
show(
  'diag_train_ensemble',
  auc(mean, (c) => DEMO_CLASSES.indexOf(c)),
);
model.dispose();

// side-ensembled prompts: each lateral class as "<template> <right|left> <term>", scores aggregated
{
  const SIDED: Record<DemoClass, string[]> = {
    Atelectasis: ['right atelectasis', 'left atelectasis'],
    Cardiomegaly: ['cardiomegaly'],
    Effusion: ['a right pleural effusion', 'a left pleural effusion'],
    Mass: ['a right lung mass', 'a left lung mass'],
    Nodule: ['a right lung nodule', 'a left lung nodule'],
    Opacity: ['right consolidation', 'left consolidation'],
    Pneumothorax: ['a right pneumothorax', 'a left pneumothorax'],
    Fracture: ['a right rib fracture', 'a left rib fracture'],
  };
  const TPL: Record<string, (t: string) => string> = {
    findings_consistent: (t) => `Findings consistent with ${t}`,
    evidence_of: (t) => `Evidence of ${t}`,
    there_is: (t) => `There is ${t}`,
  };
  const model2 = await CARZero.load(dir, { device: 'cpu' });
  for (const [tn, tf] of Object.entries(TPL)) {
    const prompts: Record<string, string> = {};
    for (const c of DEMO_CLASSES) SIDED[c].forEach((t, k) => (prompts[`${c}#${k}`] = tf(t)));
    const r = await model2.classify({ images, prompts });
    for (const agg of ['mean', 'max', 'lse'] as const) {
      const sc = r.scores.map((s) =>
        DEMO_CLASSES.map((c) => {
          const v = SIDED[c].map((_, k) => s[r.classes.indexOf(`${c}#${k}`)]);
          if (agg === 'mean') return v.reduce((a, b) => a + b, 0) / v.length;
          if (agg === 'max') return Math.max(...v);
          const m = Math.max(...v);
          return m + Math.log(v.reduce((a, b) => a + Math.exp(b - m), 0));
        }),
      );
      show(
        `sided_${tn}_${agg}`,
        auc(sc, (c) => DEMO_CLASSES.indexOf(c)),
      );
    }
  }
  model2.dispose();
}

// side x zone prompts for the classes whose reports name a zone
{
  const ZONES = ['upper lobe', 'mid lung', 'lower lobe'];
  const base: Record<DemoClass, [string, string, boolean]> = {
    Atelectasis: ['', 'atelectasis', true],
    Cardiomegaly: ['', 'cardiomegaly', false],
    Effusion: ['a ', 'pleural effusion', false],
    Mass: ['a ', 'mass', true],
    Nodule: ['a ', 'nodule', true],
    Opacity: ['', 'consolidation', true],
    Pneumothorax: ['a ', 'pneumothorax', false],
    Fracture: ['a ', 'rib fracture', false],
  };
  const model3 = await CARZero.load(dir, { device: 'cpu' });
  const prompts: Record<string, string> = {};
  const keys: Record<string, string[]> = {};
  for (const c of DEMO_CLASSES) {
    const [a, t, z] = base[c];
    const list =
      c === 'Cardiomegaly'
        ? ['Findings consistent with cardiomegaly']
        : ['right', 'left'].flatMap((sd) =>
            z
              ? ZONES.map((zn) => `Findings consistent with ${a}${sd} ${zn} ${t}`)
              : [`Findings consistent with ${a}${sd} ${t}`],
          );
    keys[c] = list.map((p, k) => {
      prompts[`${c}#${k}`] = p;
      return `${c}#${k}`;
    });
  }
  const r = await model3.classify({ images, prompts });
  const sc = r.scores.map((s) => DEMO_CLASSES.map((c) => Math.max(...keys[c].map((k) => s[r.classes.indexOf(k)]))));
  show(
    'side_zone_max',
    auc(sc, (c) => DEMO_CLASSES.indexOf(c)),
  );
  model3.dispose();
}
