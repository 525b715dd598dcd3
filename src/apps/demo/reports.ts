// Free-text reports for the phantom data set: varied templates per finding (synonyms,
// laterality, location), negations for absent findings, normal-study phrases, random sentence
// order and sometimes numbered lists. Every sentence avoids the other classes' key words, so a
// sentence speaks about one class only (the tests check the reports against the labels with
// REPORT_KEYWORDS / NEGATION below).
import type { Rng } from '../../data/rng.js';

/** The demo's classes, named as in the Open-I 18-class list (src/eval/protocols.ts). */
export const DEMO_CLASSES = [
  'Atelectasis',
  'Cardiomegaly',
  'Effusion',
  'Mass',
  'Nodule',
  'Opacity',
  'Pneumothorax',
  'Fracture',
] as const;
export type DemoClass = (typeof DEMO_CLASSES)[number];

export type Side = 'right' | 'left' | 'bilateral';
export type Zone = 'upper' | 'mid' | 'lower';

/** What the report may say about a positive finding. */
export interface FindingFacts {
  cls: DemoClass;
  side?: Side;
  zone?: Zone;
  /** Rib number (fracture), size in mm (nodule) or cm (mass). */
  number?: number;
}

/** Per class: a pattern every positive sentence of that class matches (on cleaned text). */
export const REPORT_KEYWORDS: Record<DemoClass, RegExp> = {
  Atelectasis: /atelecta|collapse/,
  Cardiomegaly:
    /cardiomegaly|enlarged (cardiac|heart)|heart is enlarged|cardiac silhouette is enlarged|cardiac enlargement/,
  Effusion: /effusion|pleural fluid|fluid in the|costophrenic/,
  Mass: /\bmass/,
  Nodule: /nodul/,
  Opacity: /opacit|consolidat|airspace/,
  Pneumothorax: /pneumothora|pleural air|pleural line/,
  Fracture: /fracture/,
};

/** A negated or normal sentence matches this (on cleaned text). */
export const NEGATION = /\b(no|not|without|negative|clear|normal|sharp|unremarkable|intact)\b/;

function pick<T>(rng: Rng, a: readonly T[]): T {
  return a[rng.int(a.length)];
}

function ordinal(n: number): string {
  return n === 1 ? '1st' : n === 2 ? '2nd' : n === 3 ? '3rd' : `${n}th`;
}

function sideWord(side: Side | undefined, rng: Rng): string {
  if (side === 'bilateral') return pick(rng, ['bilateral', 'bibasilar']);
  return side ?? 'right';
}

function zoneWord(zone: Zone | undefined, rng: Rng): string {
  switch (zone) {
    case 'upper':
      return pick(rng, ['upper lobe', 'upper zone', 'apical']);
    case 'mid':
      return pick(rng, ['mid lung', 'mid zone', 'perihilar']);
    default:
      return pick(rng, ['lower lobe', 'lower zone', 'basilar']);
  }
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** One sentence stating a positive finding (no final period). */
export function positiveSentence(f: FindingFacts, rng: Rng): string {
  const s = sideWord(f.side, rng);
  const z = zoneWord(f.zone, rng);
  switch (f.cls) {
    case 'Cardiomegaly':
      return pick(rng, [
        'Cardiomegaly is present',
        'Moderate cardiomegaly is present',
        'The heart is enlarged',
        'Enlarged cardiac silhouette',
        'The cardiac silhouette is enlarged',
        'Marked cardiac enlargement',
        'Stable cardiomegaly',
      ]);
    case 'Effusion':
      if (f.side === 'bilateral')
        return pick(rng, [
          'Bilateral pleural effusions',
          'Small bilateral effusions',
          'Fluid in the pleural spaces on both sides',
          'Bilateral pleural fluid with blunting of the costophrenic angles',
        ]);
      return pick(rng, [
        `${cap(s)} pleural effusion`,
        `Small ${s} pleural effusion`,
        `Moderate ${s} effusion`,
        `Fluid in the ${s} pleural space`,
        `Blunting of the ${s} costophrenic angle consistent with effusion`,
        `Layering ${s} pleural fluid`,
        `There is a ${s} pleural effusion`,
      ]);
    case 'Pneumothorax':
      return pick(rng, [
        `${cap(s)} apical pneumothorax`,
        `There is a ${s} pneumothorax`,
        `Moderate ${s} pneumothorax with a visible pleural line`,
        `${cap(s)} pneumothorax is seen at the apex`,
        `Pleural air at the ${s} apex`,
        `Large ${s} sided pneumothorax`,
      ]);
    case 'Opacity':
      return pick(rng, [
        `Patchy opacity in the ${s} ${z}`,
        `Consolidation in the ${s} ${z}`,
        `Airspace disease in the ${s} ${z}`,
        `Focal airspace opacity at the ${s} ${z}`,
        `${cap(s)} ${z} consolidation`,
        `There is patchy consolidation of the ${s} ${z}`,
        `Ill defined opacities in the ${s} lung`,
      ]);
    case 'Nodule':
      return pick(rng, [
        `A nodule measuring ${f.number ?? 8} mm in the ${s} ${z}`,
        `Small ${s} ${z} nodule`,
        `There is a rounded nodule in the ${s} lung`,
        `Pulmonary nodule projecting over the ${s} ${z}`,
        `Solitary ${s} lung nodule`,
        `A nodular density is seen in the ${s} ${z}`,
      ]);
    case 'Mass':
      return pick(rng, [
        `Large ${s} ${z} mass`,
        `A ${f.number ?? 5} cm mass in the ${s} lung`,
        `There is a rounded mass in the ${s} ${z}`,
        `${cap(s)} lung mass`,
        `Lobulated mass projecting over the ${s} ${z}`,
        `A large mass lesion is present in the ${s} hemithorax`,
      ]);
    case 'Atelectasis':
      return pick(rng, [
        `Plate like atelectasis at the ${s} base`,
        `Linear atelectasis in the ${s} ${z}`,
        `Subsegmental atelectasis in the ${s} lung with volume loss`,
        `${cap(s)} basilar atelectasis`,
        `Discoid atelectasis of the ${s} ${z}`,
        `Partial collapse of the ${s} ${z} with elevation of the hemidiaphragm`,
      ]);
    case 'Fracture': {
      const rib = ordinal(f.number ?? 6);
      return pick(rng, [
        `Acute fracture of the ${s} ${rib} rib`,
        `Displaced ${s} rib fracture`,
        `There is a fracture of a ${s} lateral rib`,
        `Cortical step off in the ${s} ${rib} rib consistent with fracture`,
        `${cap(s)} ${rib} rib fracture`,
        `Fracture of the ${s} ${rib} posterior rib`,
      ]);
    }
  }
}

/** One sentence denying a finding (no final period). */
export function negativeSentence(cls: DemoClass, rng: Rng): string {
  switch (cls) {
    case 'Cardiomegaly':
      return pick(rng, [
        'Heart size is normal',
        'No cardiomegaly',
        'The cardiac silhouette is not enlarged',
        'Normal cardiac size',
      ]);
    case 'Effusion':
      return pick(rng, [
        'No pleural effusion',
        'There is no effusion',
        'The costophrenic angles are sharp',
        'No pleural effusions are seen',
      ]);
    case 'Pneumothorax':
      return pick(rng, ['No pneumothorax', 'There is no pneumothorax', 'No evidence of pneumothorax']);
    case 'Opacity':
      return pick(rng, ['No focal consolidation', 'No airspace opacity', 'There is no consolidation']);
    case 'Nodule':
      return pick(rng, ['No pulmonary nodules', 'No nodule is seen', 'There are no nodules']);
    case 'Mass':
      return pick(rng, ['No mass', 'No suspicious pulmonary mass', 'There is no mass']);
    case 'Atelectasis':
      return pick(rng, ['No atelectasis', 'There is no atelectasis', 'No collapse']);
    case 'Fracture':
      return pick(rng, ['No displaced rib fracture', 'No acute fracture', 'No rib fractures are seen']);
  }
}

const NORMAL = [
  'No acute cardiopulmonary process',
  'The lungs are clear',
  'No acute cardiopulmonary abnormality',
  'Normal chest radiograph',
  'Lungs are clear bilaterally',
  'No acute intrathoracic process',
];

const FILLER = [
  'The mediastinal contours are unremarkable',
  'Osseous structures are intact',
  'The visualized upper abdomen is unremarkable',
  'Hila are unremarkable',
];

/** A report for the given positive findings (empty list: a normal study). */
export function writeReport(findings: readonly FindingFacts[], rng: Rng): string {
  const present = new Set(findings.map((f) => f.cls));
  const sentences: string[] = [];
  for (const f of findings) sentences.push(positiveSentence(f, rng));
  const absent = DEMO_CLASSES.filter((c) => !present.has(c));
  const negProb = findings.length === 0 ? 0.35 : 0.45;
  for (const c of absent) if (rng.next() < negProb) sentences.push(negativeSentence(c, rng));
  if (findings.length === 0) sentences.push(pick(rng, NORMAL));
  if (rng.next() < 0.3) sentences.push(pick(rng, FILLER));
  rng.shuffle(sentences);
  if (findings.length === 0 && rng.next() < 0.6) {
    // normal-study impression first, as radiologists often write it
    const k = sentences.findIndex((s) => NORMAL.includes(s));
    sentences.unshift(...sentences.splice(k, 1));
  }
  if (sentences.length >= 2 && rng.next() < 0.3)
    return sentences.map((s, i) => `${i + 1}. ${s}.`).join(rng.next() < 0.5 ? ' ' : '\n');
  return sentences.map((s) => `${s}.`).join(' ');
}

/** Prompts, one per class, worded unlike every report sentence (class -> prompt). */
export const DEMO_PROMPTS: Record<string, string> = {
  Atelectasis: 'Findings suggest partial airlessness of lung tissue',
  Cardiomegaly: 'Findings suggest an enlarged heart',
  Effusion: 'Findings suggest fluid collecting around the lung',
  Mass: 'Findings suggest a big rounded lung tumour',
  Nodule: 'Findings suggest a small round spot in the lung',
  Opacity: 'Findings suggest hazy whiteness filling part of the lung',
  Pneumothorax: 'Findings suggest free air around a shrunken lung',
  Fracture: 'Findings suggest a broken rib',
};

/** Prompts for the 10 Open-I classes the phantom never draws (their AUROC is undefined). */
export const OTHER_OPENI_PROMPTS: Record<string, string> = {
  Infiltration: 'Findings suggest infiltration of the lung',
  Pneumonia: 'Findings suggest pneumonia',
  Edema: 'Findings suggest pulmonary edema',
  Emphysema: 'Findings suggest emphysema',
  Fibrosis: 'Findings suggest pulmonary fibrosis',
  Pleural_Thickening: 'Findings suggest pleural thickening',
  Hernia: 'Findings suggest a hiatal hernia',
  Lesion: 'Findings suggest a lung lesion',
  'Calcified Granuloma': 'Findings suggest a calcified granuloma',
  Granuloma: 'Findings suggest a granuloma',
};
