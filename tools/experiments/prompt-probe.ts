// Zero-shot AUROC of a trained demo model under several prompt sets (is a weak class the image
// side or the prompt wording?). Usage: npx tsx tools/experiments/prompt-probe.ts <model dir> <phantom dir>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CARZero } from '../../src/model/carzero.js';
import { rocAuc } from '../../src/eval/metrics.js';
import { DEMO_CLASSES } from '../../src/apps/demo/reports.js';
import { DEMO_ZERO_SHOT_PROMPTS } from '../../src/apps/demo/demo.js';

const [dir, data] = process.argv.slice(2);
const idx = JSON.parse(readFileSync(join(data, 'phantom.json'), 'utf8'));
const test = idx.images.filter((i: { split: string }) => i.split === 'test');
const SETS: Record<string, Record<string, string>> = {
  demo_first: Object.fromEntries(Object.entries(DEMO_ZERO_SHOT_PROMPTS).map(([c, l]) => [c, l[0]])),
  training_like: {
    Atelectasis: 'Right basilar atelectasis',
    Cardiomegaly: 'Cardiomegaly is present',
    Effusion: 'Right pleural effusion',
    Mass: 'Right lung mass',
    Nodule: 'Solitary right lung nodule',
    Opacity: 'Consolidation in the right lower lobe',
    Pneumothorax: 'There is a right pneumothorax',
    Fracture: 'Displaced right rib fracture',
  },
  one_word_plus: {
    Atelectasis: 'atelectasis atelectasis',
    Cardiomegaly: 'cardiomegaly cardiomegaly',
    Effusion: 'effusion effusion',
    Mass: 'mass mass',
    Nodule: 'nodule nodule',
    Opacity: 'consolidation consolidation',
    Pneumothorax: 'pneumothorax pneumothorax',
    Fracture: 'fracture fracture',
  },
};
const model = await CARZero.load(dir, { device: 'cpu' });
for (const [name, prompts] of Object.entries(SETS)) {
  const r = await model.classify({ images: test.map((im: { file: string }) => join(data, im.file)), prompts });
  const a = DEMO_CLASSES.map((c, j) =>
    rocAuc(
      test.map((im: { labels: number[] }) => im.labels[j]),
      r.scores.map((s) => s[r.classes.indexOf(c)]),
    ),
  );
  console.log(
    `${name.padEnd(14)} macro ${(a.reduce((x, y) => x + y, 0) / a.length).toFixed(3)}  ` +
      DEMO_CLASSES.map((c, j) => `${c} ${a[j].toFixed(3)}`).join(' '),
  );
}
model.dispose();
