#!/usr/bin/python3
# Fixtures for src/eval (metrics and protocols), computed independently with scikit-learn.
#
#   /usr/bin/python3 tools/fixtures-eval.py            (Debian's python3-sklearn, numpy, cv2)
#
# Writes test/fixtures/eval/:
#   metrics.json          random score/label matrices (ties, single-class columns) with
#                         sklearn's per-class AUROC, trapezoid AUPRC (auc(recall, precision) on
#                         precision_recall_curve), micro/macro/weighted, groups, F1, accuracy
#   <protocol>/           a mini data set per protocol in the original file formats, a score CSV
#                         with known values and expected.json (sklearn on the same rows)
#   openi/images/         36 small generated PNGs; openi/expected-model.json holds sklearn's
#                         metrics on the scores of the tiny model (test/fixtures/tiny), obtained by
#                         running `node dist/cli/main.js convert/classify` (build first)
#
# Rules shared with src/eval (documented there): a single-class column has AUROC/AUPRC null and
# is left out of the macro means; score columns map to the protocol's classes by position.
# Label rules are re-implemented here from the original inference script, without pandas.
import json
import os
import subprocess
import sys
import tempfile
import warnings

import cv2
import numpy as np
from scipy.special import softmax
from sklearn.metrics import accuracy_score, auc, f1_score, precision_recall_curve, roc_auc_score

warnings.filterwarnings('ignore')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'eval')
rng = np.random.RandomState(11)


def nn(v):
    v = float(v)
    return None if np.isnan(v) else v


def single(col):
    return len(np.unique(col)) < 2


def auprc(y, s):
    p, r, _ = precision_recall_curve(y, s)
    return auc(r, p)


def lt_groups(counts):
    # obtaion_LT_multi_label_distribution of the original utils.py
    thr = np.percentile(counts, 65)
    head = np.where(counts > thr)[0]
    medium = np.where((counts <= thr) & (counts > 10))[0]
    tail = np.where(counts <= 10)[0]
    return thr, head.tolist(), medium.tolist(), tail.tolist()


def summary(y, s, classes, extras=()):
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    C = y.shape[1]
    valid = [j for j in range(C) if not single(y[:, j])]
    per_auc = [nn(roc_auc_score(y[:, j], s[:, j])) if j in valid else None for j in range(C)]
    per_prc = [nn(auprc(y[:, j], s[:, j])) if j in valid else None for j in range(C)]
    out = {
        'classes': classes,
        'images': int(y.shape[0]),
        'positives': y.sum(0).tolist(),
        'auroc': per_auc,
        'auprc': per_prc,
        # sklearn's own multi-column averages over the defined columns (independent of the above)
        'macro_auroc': nn(roc_auc_score(y[:, valid], s[:, valid], average='macro')),
        'weighted_auroc': nn(roc_auc_score(y[:, valid], s[:, valid], average='weighted')),
        'micro_auroc': nn(roc_auc_score(y.ravel(), s.ravel())),
        'auprc_micro': nn(auprc(y.ravel(), s.ravel())),
        'auprc_macro': nn(np.mean([auprc(y[:, j], s[:, j]) for j in valid])),
        'single_class': [j for j in range(C) if j not in valid],
    }
    if 'groups' in extras:
        counts = y.sum(0)
        thr, head, medium, tail = lt_groups(counts)

        def g(idx):
            idx = [j for j in idx if j in valid]
            return {
                'classes': [classes[j] for j in idx],
                'macro_auroc': nn(roc_auc_score(y[:, idx], s[:, idx], average='macro')) if idx else None,
                'macro_auprc': nn(np.mean([auprc(y[:, j], s[:, j]) for j in idx])) if idx else None,
            }

        out['groups'] = {'head_threshold': float(thr), 'head': g(head), 'medium': g(medium), 'tail': g(tail)}
    if 'padchest' in extras:
        counts = y.sum(0)
        tail = [j for j in range(C) if counts[j] <= 10]
        out['padchest20'] = {
            'macro_auroc': nn(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in tail])),
            'macro_auprc': nn(np.mean([auprc(y[:, j], s[:, j]) for j in tail])),
        }
        top = np.argsort(counts, kind='stable')[:100]
        out['tail100'] = {
            'macro_auroc': nn(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in top])),
            'macro_auprc': nn(np.mean([auprc(y[:, j], s[:, j]) for j in top])),
        }
    if 'f1' in extras:
        pre = np.zeros_like(s)
        pre[np.arange(len(s)), s.argmax(1)] = 1
        out['f1'] = {
            'micro': float(f1_score(y, pre, average='micro')),
            'macro': float(f1_score(y, pre, average='macro')),
            'weighted': float(f1_score(y, pre, average='weighted')),
            'per_class': f1_score(y, pre, average=None).tolist(),
        }
    if 'accuracy' in extras:
        p = softmax(s, axis=1)
        out['accuracy'] = {
            'overall': float(accuracy_score(y.argmax(1), p.argmax(1))),
            'per_class': [float(accuracy_score(y[:, j], p[:, j].round())) for j in range(C)],
        }
    return out


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(text)


def csv_line(fields):
    def q(v):
        v = str(v)
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n\r') else v
    return ','.join(q(v) for v in fields) + '\n'


def fmt(v):
    return repr(float(v))


# ---- metrics.json -----------------------------------------------------------------------------
def metric_cases():
    cases = []
    # plain random, continuous scores
    y = (rng.rand(60, 6) < np.array([0.1, 0.3, 0.5, 0.7, 0.2, 0.45])).astype(float)
    s = rng.randn(60, 6) + y * 0.8
    cases.append(('random', y, s))
    # heavy ties: scores on a coarse grid, one column of constant scores
    y = (rng.rand(50, 5) < 0.4).astype(float)
    s = np.round(rng.rand(50, 5) + 0.3 * y, 1)
    s[:, 4] = 0.25
    cases.append(('ties', y, s))
    # single-class columns: all 0 and all 1
    y = (rng.rand(40, 5) < 0.35).astype(float)
    y[:, 1] = 0
    y[:, 3] = 1
    s = np.round(rng.randn(40, 5), 2)
    cases.append(('single_class', y, s))
    # tiny: 5 rows
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], dtype=float)
    s = np.array([[0.9, 0.1], [0.4, 0.4], [0.4, 0.8], [0.2, 0.8], [0.9, 0.3]])
    cases.append(('tiny', y, s))
    out = []
    for name, y, s in cases:
        C = y.shape[1]
        e = summary(y, s, [f'c{j}' for j in range(C)], extras=('groups', 'f1'))
        # the raw sklearn AUPRC even for single-class columns (documented, not used)
        e['sklearn_auprc_raw'] = [nn(auprc(y[:, j], s[:, j])) for j in range(C)]
        p, r, t = precision_recall_curve(y[:, 0], s[:, 0])
        e['pr_curve_col0'] = {'precision': p.tolist(), 'recall': r.tolist(), 'thresholds': t.tolist()}
        out.append({'name': name, 'labels': y.tolist(), 'scores': s.tolist(), 'expected': e})
    # one-hot labels for the softmax accuracy (CheXpert 5x200 style), with an exact 0.5 probability
    y = np.eye(5)[rng.randint(0, 5, 40)]
    s = rng.randn(40, 5) + y
    s[0] = [0.0, 0.0, -50, -50, -50]
    out.append({'name': 'onehot', 'labels': y.tolist(), 'scores': s.tolist(),
                'expected': summary(y, s, [f'c{j}' for j in range(5)], extras=('accuracy',))})
    percentiles = []
    for arr in ([1, 2, 3, 4], [5, 5, 5], [0, 3, 11, 12, 40, 7, 2], list(range(21)), [1, 100], [7],
                [2, 9, 4, 4, 30, 1, 0, 13, 13, 6, 10, 11]):
        percentiles.append({'values': arr, 'p65': float(np.percentile(arr, 65)),
                            'groups': lt_groups(np.asarray(arr, dtype=float))[1:]})
    return {'cases': out, 'percentiles': percentiles}


# ---- mini data sets -------------------------------------------------------------------------
OPENI = ['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule', 'Pneumonia', 'Pneumothorax',
         'Edema', 'Emphysema', 'Fibrosis', 'Pleural_Thickening', 'Hernia', 'Fracture', 'Opacity', 'Lesion',
         'Calcified Granuloma', 'Granuloma']
OPENI_SYN = {'Pleural_Thickening': ['pleural thickening'], 'Infiltration': ['Infiltrate'],
             'Atelectasis': ['Atelectases']}
# how a finding is written in labels_automatic (MeSH automatic terms, lower case, '|'-joined)
OPENI_TEXT = {
    'Atelectasis': ['atelectasis', 'pulmonary atelectasis', 'atelectases'], 'Cardiomegaly': ['cardiomegaly'],
    'Effusion': ['pleural effusion'], 'Infiltration': ['infiltrate', 'infiltration'], 'Mass': ['mass'],
    'Nodule': ['nodule', 'lung/nodule'],
    'Pneumonia': ['pneumonia'], 'Pneumothorax': ['pneumothorax'], 'Edema': ['pulmonary edema'],
    'Emphysema': ['pulmonary emphysema'],
    'Fibrosis': ['pulmonary fibrosis'], 'Pleural_Thickening': ['pleural thickening'], 'Hernia': ['hernia, hiatal'],
    'Fracture': ['fractures, bone'],
    'Opacity': ['opacity', 'lung/hypoinflation/opacity'], 'Lesion': ['lesion'],
    'Calcified Granuloma': ['calcified granuloma'], 'Granuloma': ['granuloma'],
}


def openi_truth(text):
    # tripple_openi_rusult_merge: NaN -> "-1"; str.contains(name.lower()) | synonyms, case-sensitive
    s = '-1' if text == '' else text
    return [1.0 if (c.lower() in s or any(x.lower() in s for x in OPENI_SYN.get(c, []))) else 0.0 for c in OPENI]


def gen_images(folder, names):
    os.makedirs(folder, exist_ok=True)
    for k, n in enumerate(names):
        h, w = (64, 48) if k % 3 == 0 else (48, 64) if k % 3 == 1 else (56, 56)
        yy, xx = np.mgrid[0:h, 0:w]
        img = 40 + 30 * np.sin(xx / (3 + k % 5)) + 25 * np.cos(yy / (2 + k % 7))
        for _ in range(1 + k % 4):
            cx, cy, r = rng.randint(0, w), rng.randint(0, h), rng.randint(4, 14)
            img += 120 * ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)
        img += rng.randint(0, 30, size=img.shape)
        cv2.imwrite(os.path.join(folder, n), np.clip(img, 0, 255).astype(np.uint8))


def openi(tiny_scores):
    d = os.path.join(OUT, 'openi')
    n = 36
    names = [f'CXR{k + 1}_1_IM-{1000 + k:04d}-1001.png' for k in range(n)]
    gen_images(os.path.join(d, 'images'), names)
    texts = []
    for k in range(n):
        if k in (3, 17):
            texts.append('')  # empty -> "-1": no class
        elif k == 9:
            texts.append('normal')
        elif k == 11:
            texts.append('Mass|Cardiomegaly')  # capitalised: no match (case-sensitive, as the original)
        else:
            picks = [c for c in OPENI if rng.rand() < 0.22]
            # every class is positive at least twice and negative often
            picks += [OPENI[k % 18]]
            terms = sorted({OPENI_TEXT[c][rng.randint(len(OPENI_TEXT[c]))] for c in picks})
            texts.append('|'.join(terms))
    y = np.array([openi_truth(t) for t in texts])
    assert all(0 < y[:, j].sum() < n for j in range(18)), y.sum(0)
    rows = ',uid,file_name,labels_major,labels_automatic\n'
    for k in range(n):
        rows += csv_line([0, f'CXR{k + 1}', names[k], texts[k].split('|')[0] if texts[k] else '', texts[k]])
    write(os.path.join(d, 'custom.csv'), rows)
    write(os.path.join(d, 'openi_multi_label_image.csv'), 'Path\n' + ''.join(f'images/{m}\n' for m in names))
    prompts = {c: [f'There is {c.lower().replace("_", " ")}'] for c in OPENI}
    write(os.path.join(d, 'openi_multi_label_text.json'), json.dumps(prompts, indent=1) + '\n')
    s = np.round(rng.randn(n, 18) * 0.6 + y * 0.9, 2)  # 2 decimals: many ties
    text = csv_line(['Path'] + OPENI) + ''.join(
        csv_line([f'images/{names[k]}'] + [fmt(v) for v in s[k]]) for k in range(n))
    write(os.path.join(d, 'scores.csv'), text)
    write(os.path.join(d, 'expected.json'), json.dumps(summary(y, s, OPENI, extras=('groups',)), indent=1) + '\n')
    if tiny_scores is not None:
        st = tiny_scores(d)
        gaps = [np.min(np.diff(np.sort(st[:, j]))) for j in range(18)]
        e = summary(y, st, OPENI, extras=('groups',))
        e['min_score_gap'] = float(min(gaps))
        write(os.path.join(d, 'expected-model.json'), json.dumps(e, indent=1) + '\n')


def padchest():
    d = os.path.join(OUT, 'padchest')
    vocab = ['normal', 'atelectasis', 'cardiomegaly', 'consolidation', 'pulmonary edema', 'pneumonia',
             'pleural effusion', 'COPD signs', 'nodule', 'scoliosis', 'aortic elongation', 'chronic changes',
             'hiatal hernia', 'granuloma']
    rate = [0.3, 0.2, 0.35, 0.1, 0.08, 0.12, 0.4, 0.05, 0.15, 0.3, 0.45, 0.5, 0.06, 0.1]
    n = 60
    data = {}
    for k in range(n):
        labs = [v for v, r in zip(vocab, rate) if rng.rand() < r]
        if k < len(vocab):
            labs.append(vocab[k])  # every label at least once
        if k == 5:
            labs += labs[:1]  # a duplicate within a list
        data[f'216840111366964012{k:06d}_00-{k:03d}-{k:03d}.png'] = labs
    classes = sorted(set(sum(data.values(), [])))
    classes.remove('normal')
    y = np.array([[1.0 if c in v else 0.0 for c in classes] for v in data.values()])
    keep = [j for j in range(len(classes)) if 0 < y[:, j].sum() < n]
    assert len(keep) == len(classes)
    write(os.path.join(d, 'manual_image.json'), json.dumps(data, indent=1) + '\n')
    s = rng.randn(n, len(classes)) + y
    keys = list(data)
    # the score CSV lists the images in another order (rows are matched by path)
    order = rng.permutation(n)
    text = csv_line(['Path'] + classes) + ''.join(
        csv_line([f'/data/padchest/images/{keys[i]}'] + [fmt(v) for v in s[i]]) for i in order)
    write(os.path.join(d, 'scores.csv'), text)
    e = summary(y, s, classes, extras=('groups', 'padchest'))
    e['query_auroc'] = {q: nn(roc_auc_score(y[:, classes.index(q)], s[:, classes.index(q)])) for q in
                        ['atelectasis', 'cardiomegaly', 'consolidation', 'pulmonary edema', 'pneumonia']}
    write(os.path.join(d, 'expected.json'), json.dumps(e, indent=1) + '\n')


CXR14 = ['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Lung Mass', 'Lung Nodule', 'Pneumonia',
         'Pneumothorax', 'Consolidation', 'Edema', 'Emphysema', 'Fibrosis', 'Pleural Thickening', 'Hernia']


def chestxray14():
    d = os.path.join(OUT, 'chestxray14')
    n = 45
    y = (rng.rand(n, 14) < 0.25).astype(float)
    y[0, :] = 1
    y[1, :] = 0
    lines = ''.join(f'images/{k:08d}_000.png ' + ' '.join(str(int(v)) for v in y[k]) + '\n' for k in range(n))
    write(os.path.join(d, 'test_list.txt'), lines)
    s = np.round(rng.randn(n, 14) + y * 0.7, 3)
    # the original's saved predictions: class columns only, rows in label order
    write(os.path.join(d, 'scores.csv'), csv_line(CXR14) + ''.join(csv_line([fmt(v) for v in s[k]]) for k in range(n)))
    write(os.path.join(d, 'expected.json'), json.dumps(summary(y, s, CXR14), indent=1) + '\n')


CHEX5 = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion']


def chexpert5():
    d = os.path.join(OUT, 'chexpert5')
    n = 40
    y = (rng.rand(n, 5) < 0.35).astype(float)
    y[0, :] = 1
    y[1, :] = 0
    paths = [f'test/patient{64740 + k // 2}/study1/view{1 + k % 2}_frontal.jpg' for k in range(n)]
    cols = ['Path', 'Enlarged Cardiomediastinum'] + CHEX5 + ['No Finding']
    text = csv_line(cols) + ''.join(csv_line([paths[k], 0] + [f'{v:.1f}' for v in y[k]] + [0]) for k in range(n))
    write(os.path.join(d, 'test_labels.csv'), text)
    s = rng.randn(n, 5) + y
    write(os.path.join(d, 'scores.csv'), csv_line(['Path'] + CHEX5) + ''.join(
        csv_line([f'/data/CheXpert-v1.0/{paths[k]}'] + [fmt(v) for v in s[k]]) for k in range(n)))
    write(os.path.join(d, 'expected.json'), json.dumps(summary(y, s, CHEX5), indent=1) + '\n')


DET10 = ['Atelectasis', 'Calcification', 'Consolidation', 'Effusion', 'Emphysema', 'Fibrosis', 'Fracture', 'Mass',
         'Nodule', 'Pneumothorax']


def chestxdet10():
    d = os.path.join(OUT, 'chestxdet10')
    n = 50
    entries = []
    y = np.zeros((n, 10))
    for k in range(n):
        syms = [c for c in DET10 if rng.rand() < 0.18]
        if k < 10:
            syms.append(DET10[k])
        if k % 13 == 0:
            syms.append('Diffuse Nodule')  # outside the 10 classes: ignored
        syms = list(dict.fromkeys(syms))
        boxes = [[int(a) for a in sorted(rng.randint(0, 1024, 2))] for _ in syms]
        boxes = [[b[0], b[0] // 2, b[1], b[1] // 2 + 100] for b in boxes]
        entries.append({'file_name': f'{36000 + k}.png', 'syms': syms, 'boxes': boxes})
        for c in syms:
            if c in DET10:
                y[k, DET10.index(c)] = 1
    write(os.path.join(d, 'test.json'), json.dumps(entries) + '\n')
    s = rng.randn(n, 10) + y * 1.2
    write(os.path.join(d, 'scores.csv'), csv_line(['Path'] + DET10) + ''.join(
        csv_line([f'images/{entries[k]["file_name"]}'] + [fmt(v) for v in s[k]]) for k in range(n)))
    write(os.path.join(d, 'expected.json'), json.dumps(summary(y, s, DET10, extras=('f1',)), indent=1) + '\n')


def chexpert5x200():
    d = os.path.join(OUT, 'chexpert5x200')
    n = 50
    y = np.eye(5)[np.arange(n) % 5]
    paths = [f'CheXpert-v1.0/train/patient{k:05d}/study1/view1_frontal.jpg' for k in range(n)]
    write(os.path.join(d, 'chexpert_5x200.csv'), csv_line(['Path'] + CHEX5) + ''.join(
        csv_line([paths[k]] + [f'{v:.1f}' for v in y[k]]) for k in range(n)))
    s = rng.randn(n, 5) + y * 1.5
    write(os.path.join(d, 'scores.csv'), csv_line(['Path'] + CHEX5) + ''.join(
        csv_line([paths[k]] + [fmt(v) for v in s[k]]) for k in range(n)))
    write(os.path.join(d, 'expected.json'), json.dumps(summary(y, s, CHEX5, extras=('accuracy',)), indent=1) + '\n')


def tiny_model_scores(d):
    # scores of the tiny model on the Open-I mini set, through this package's CLI
    main = os.path.join(ROOT, 'dist', 'cli', 'main.js')
    tiny = os.path.join(ROOT, 'test', 'fixtures', 'tiny')
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, 'model')
        subprocess.run(['node', main, 'convert', '--checkpoint', os.path.join(tiny, 'carzero-tiny.ckpt'),
                        '--text-model', os.path.join(tiny, 'bert-tiny'), '--out', model, '--vit-heads', '2',
                        '--head-heads', '4'], check=True, stdout=subprocess.DEVNULL)
        out = os.path.join(tmp, 's.csv')
        subprocess.run(['node', main, 'classify', '--model', model,
                        '--prompts', os.path.join(d, 'openi_multi_label_text.json'), '--device', 'cpu',
                        '--format', 'csv', '--out', out, os.path.join(d, 'openi_multi_label_image.csv')],
                       check=True, stderr=subprocess.DEVNULL)
        with open(out) as f:
            rows = [line.rstrip('\n').split(',') for line in f][1:]
        write(os.path.join(d, 'tiny-model-scores.csv'), open(out).read().replace(d + os.sep, ''))
    return np.array([[float(v) for v in r[1:]] for r in rows])


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    write(os.path.join(OUT, 'metrics.json'), json.dumps(metric_cases()) + '\n')
    openi(None if '--no-model' in sys.argv else tiny_model_scores)
    padchest()
    chestxray14()
    chexpert5()
    chestxdet10()
    chexpert5x200()
    print('wrote', OUT)
