// MIMIC-style CSV reading: split/view filtering, path resolution, sentence cleaning per report,
// dropped studies, column names; the seeded RNG.
import test from 'ava';
import { join } from 'node:path';
import { parseMimicCsv, readMimicCsv, reportSentences, DatasetError } from '../src/data/mimic.js';
import { Rng, permutation } from '../src/data/rng.js';
import { FIXTURE_CSV } from './data-helpers.js';

test('train split: frontal rows only, empty and one-word reports dropped and counted', async (t) => {
  const d = await readMimicCsv(FIXTURE_CSV, { root: '/data/mimic' });
  t.is(d.split, 'train');
  t.deepEqual(d.columns, { path: 'Path', split: 'Split', view: 'ViewPosition', report: ['Report Impression'] });
  t.deepEqual(d.counts, {
    rows: 25,
    inSplit: 21,
    frontal: 18,
    nonFrontal: 3,
    emptyReport: 1,
    noSentence: 1,
    excluded: 0,
    kept: 16,
  });
  t.deepEqual(
    d.dropped.map((r) => [r.key, r.row, r.reason]),
    [
      ['files/p10/s06/img06.png', 8, 'no sentence'],
      ['files/p10/s07/img07.png', 9, 'empty report'],
    ],
  );
  t.false(
    d.items.some((it) => /img0[24]|img22/.test(it.key)),
    'lateral views are excluded',
  );
  const first = d.items[0];
  t.is(first.key, 'files/p10/s00/img00.png');
  t.is(first.path, join('/data/mimic', 'files/p10/s00/img00.png'));
  t.is(first.row, 2);
});

test('sentences per report: numbered lists, newlines, one-word sentences, non-ASCII, the 5-word stop', async (t) => {
  const d = await readMimicCsv(FIXTURE_CSV, { root: '/r' });
  const by = new Map(d.items.map((it) => [it.key.split('/').pop(), it]));
  t.deepEqual(by.get('img00.png')!.sentences, [
    'no acute cardiopulmonary process',
    'small left pleural effusion is seen',
  ]);
  // "1. Pleural effusion. 2. Atelectasis. 3. No pneumothorax.": the one-word sentence goes.
  t.deepEqual(by.get('img14.png')!.sentences, ['pleural effusion', 'no pneumothorax']);
  // A quoted report over two lines; the record starts at line 10.
  t.deepEqual(by.get('img08.png')!.sentences, [
    'endotracheal tube terminates 4 cm above the carina',
    'nasogastric tube in the stomach',
  ]);
  t.is(by.get('img08.png')!.row, 10);
  t.is(by.get('img10.jpg')!.row, 13);
  t.deepEqual(by.get('img24.png')!.sentences, ['small bilateral effusions', 'rsum of findings stable cardiomegaly']);
  // The original stops once the running word count is exactly captions_per_image (5).
  t.deepEqual(by.get('img16.png')!.sentences, ['picc line tip in svc']);
  t.deepEqual(by.get('img12.png')!.sentences, ['interval increase in pulmonary edema']);
  const all = await readMimicCsv(FIXTURE_CSV, { root: '/r', maxWords: 0 });
  const byAll = new Map(all.items.map((it) => [it.key.split('/').pop(), it]));
  t.deepEqual(byAll.get('img16.png')!.sentences, ['picc line tip in svc', 'no focal consolidation']);
  t.deepEqual(reportSentences('No acute process. Stable. Lungs clear.', 5), ['no acute process', 'lungs clear']);
  t.deepEqual(reportSentences('Two words. Three more words. Extra sentence here.', 5), [
    'two words',
    'three more words',
  ]);
});

test('validate/test splits, aliases, exclusions', async (t) => {
  const v = await readMimicCsv(FIXTURE_CSV, { split: 'validate' });
  t.deepEqual(
    v.items.map((it) => it.key),
    ['files/p10/s05/img05.png', 'files/p10/s19/img19.png'],
  );
  t.is(v.root, join(FIXTURE_CSV, '..'));
  const text =
    'Path,Split,Frontal/Lateral,Report Impression\n' +
    'a.png,valid,Frontal,Lungs are clear.\n' +
    'b.png,valid,Lateral,Lungs are clear.\n' +
    'c.png,train,Frontal,No effusion seen.\n';
  const orig = parseMimicCsv(text, 'orig.csv', { split: 'validate', root: '/x' });
  t.deepEqual(
    orig.items.map((it) => it.path),
    ['/x/a.png'],
  );
  t.is(orig.columns.view, 'Frontal/Lateral');
  const ex = await readMimicCsv(FIXTURE_CSV, { exclude: ['files/p10/s00/img00.png'] });
  t.is(ex.counts.excluded, 1);
  t.is(ex.items.length, 15);
  const test_ = await readMimicCsv(FIXTURE_CSV, { split: 'test' });
  t.is(test_.items.length, 2);
});

test('configurable columns; reports from several columns are concatenated', (t) => {
  const text = 'img,part,pos,findings,impression\n/abs/a.png,train,ap,Heart is normal,". Lungs are clear."\n';
  const d = parseMimicCsv(text, 'x.csv', {
    columns: { path: 'img', split: 'part', view: 'pos', report: ['findings', 'impression'] },
  });
  t.deepEqual(d.items[0].sentences, ['heart is normal', 'lungs are clear']);
  t.is(d.items[0].path, '/abs/a.png');
});

test('errors name the file, the column and the line', (t) => {
  const e1 = t.throws(() => parseMimicCsv('Path,Split,Report\na.png,train,x y\n', 'nov.csv'), {
    instanceOf: DatasetError,
  });
  t.regex(e1!.message, /nov\.csv: no view column .*Frontal\/Lateral.*the header has: Path, Split, Report/);
  const e2 = t.throws(() =>
    parseMimicCsv('Path,Split,ViewPosition,Report\na.png,train,PA,x y\n', 'c.csv', { columns: { report: 'Text' } }),
  );
  t.regex(e2!.message, /c\.csv: no column 'Text' \(report\)/);
  const e3 = t.throws(
    () => parseMimicCsv('Path,Split,ViewPosition,Report\na.png,train,PA,x y\n ,train,PA,"two\nlines"\n', 'd.csv'),
    { instanceOf: DatasetError },
  );
  t.regex(e3!.message, /d\.csv: line 3: empty image path/);
  t.is((e3 as DatasetError).row, 3);
  const e4 = t.throws(() => parseMimicCsv('Path,Split,ViewPosition,Report\na.png,train\n', 'e.csv'));
  t.regex(e4!.message, /e\.csv: record 2 has 2 fields/);
});

test('Rng: seeded, serialisable, derived streams independent', (t) => {
  const a = new Rng(42);
  const seq = Array.from({ length: 5 }, () => a.nextU32());
  t.deepEqual(Array.from({ length: 5 }, () => new Rng(42).nextU32()).length, 5);
  const b = new Rng(42);
  t.deepEqual(
    Array.from({ length: 5 }, () => b.nextU32()),
    seq,
  );
  const st = JSON.parse(JSON.stringify(b.state()));
  const c = new Rng(st);
  t.deepEqual(
    Array.from({ length: 8 }, () => c.next()),
    Array.from({ length: 8 }, () => b.next()),
  );
  t.notDeepEqual(Rng.derive(1, 2, 3).state(), Rng.derive(1, 2, 4).state());
  t.deepEqual(Rng.derive(1, 2, 3).state(), Rng.derive(1, 2, 3).state());
  const r = new Rng(7);
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[r.int(3)]++;
  t.true(
    counts.every((n) => n > 900 && n < 1100),
    String(counts),
  );
  for (let i = 0; i < 1000; i++) {
    const u = r.next();
    t.true(u >= 0 && u < 1);
  }
  const p = permutation(100, new Rng(3));
  t.deepEqual(
    [...p].sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
  t.throws(() => new Rng(-1), { instanceOf: RangeError });
  t.throws(() => new Rng([0, 0, 0, 0]), { instanceOf: RangeError });
});
