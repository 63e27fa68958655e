#!/usr/bin/python3
"""Time the reliability metrics with NumPy/SciPy/scikit-learn, for comparison
with `go test ./eval -bench AllMetrics50kx1k`.

Same workload as the Go benchmark: 50,000 x 1,000 float32 ID similarities
(around 0.2, std 0.03, the label's column raised by up to 0.05), a
10,000 x 1,000 temperature split and 4 OOD sets of 10,000 x 1,000.

Two timings (best of --repeat runs, each after the data are in memory):
  sklearn_core: what the issue names - roc_auc_score and
    average_precision_score (ID and OOD positive) per OOD set on MCM scores,
    plus a NumPy ECE (15 bins) on the ID confidences; the softmaxes that
    produce the scores and confidences are included.
  python_all: every metric qatclip computes - acc1/acc5, NLL, Brier,
    ECE/MCE, AURC, temperature fit (scipy minimize_scalar on the split) with
    ts_ece/ts_nll, and per OOD set AUROC, AUPR-in, AUPR-out and FPR@95.

Run with Debian's Python:
    /usr/bin/python3 bench/metrics/sklearn_bench.py [--repeat 3] [--save DIR]
--save also writes the arrays as .npy, so `qatclip score` can be timed on
exactly the same data.
"""
import argparse
import json
import os
import time

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

N, C, FIT, OOD_N, OOD_SETS = 50_000, 1_000, 10_000, 10_000, 4
SCALE, TAU, BINS = 100.0, 1.0, 15


def sims(rng, n, labelled):
    cos = (0.2 + 0.03 * rng.standard_normal((n, C))).astype(np.float32)
    labels = None
    if labelled:
        labels = rng.integers(0, C, n)
        cos[np.arange(n), labels] += (0.05 * rng.random(n)).astype(np.float32)
    return cos, labels


def ece_numpy(conf, correct, bins=BINS):
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=False), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    sconf = np.bincount(idx, weights=conf, minlength=bins)
    sacc = np.bincount(idx, weights=correct, minlength=bins)
    nz = count > 0
    gaps = np.abs(sacc[nz] / count[nz] - sconf[nz] / count[nz])
    return float(np.sum(count[nz] / len(conf) * gaps)), float(gaps.max())


def mcm(cos):
    return softmax(cos.astype(np.float64) / TAU, axis=1).max(axis=1)


def sklearn_core(id_cos, id_labels, oods):
    probs = softmax(SCALE * id_cos.astype(np.float64), axis=1)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == id_labels).astype(np.float64)
    out = {"ece": ece_numpy(conf, correct)[0]}
    s_id = mcm(id_cos)
    for k, o in enumerate(oods):
        s_o = mcm(o)
        y = np.concatenate([np.ones(len(s_id)), np.zeros(len(s_o))])
        s = np.concatenate([s_id, s_o])
        out[f"ood{k}"] = (roc_auc_score(y, s), average_precision_score(y, s),
                          average_precision_score(1 - y, -s))
    return out


def classification(cos, labels, scale):
    logits = scale * cos.astype(np.float64)
    logp = log_softmax(logits, axis=1)
    probs = np.exp(logp)
    n = len(labels)
    top5 = np.argpartition(-cos, 5, axis=1)[:, :5]
    pred = probs.argmax(axis=1)
    correct = (pred == labels).astype(np.float64)
    conf = probs.max(axis=1)
    brier = np.mean(np.sum(probs ** 2, axis=1) - 2 * probs[np.arange(n), labels] + 1)
    ece, mce = ece_numpy(conf, correct)
    order = np.argsort(-conf, kind="stable")
    risks = np.cumsum(1 - correct[order]) / np.arange(1, n + 1)
    return dict(acc1=correct.mean(), acc5=np.mean(np.any(top5 == labels[:, None], axis=1)),
                nll=-logp[np.arange(n), labels].mean(), brier=brier, ece=ece, mce=mce,
                aurc=risks.mean())


def python_all(id_cos, id_labels, fit_cos, fit_labels, oods):
    res = classification(id_cos, id_labels, SCALE)
    fit_logits = SCALE * fit_cos.astype(np.float64)
    rows = np.arange(len(fit_labels))

    def nll(log_t):
        return -log_softmax(fit_logits / np.exp(log_t), axis=1)[rows, fit_labels].mean()

    t = float(np.exp(minimize_scalar(nll, bounds=(np.log(1e-3), np.log(1e3)), method="bounded").x))
    ts = classification(id_cos, id_labels, SCALE / t)
    res.update(temperature=t, ts_ece=ts["ece"], ts_nll=ts["nll"])
    s_id = mcm(id_cos)
    for k, o in enumerate(oods):
        s_o = mcm(o)
        y = np.concatenate([np.ones(len(s_id)), np.zeros(len(s_o))])
        s = np.concatenate([s_id, s_o])
        fpr, tpr, _ = roc_curve(y, s)
        res[f"ood{k}"] = dict(auroc=roc_auc_score(y, s), aupr_in=average_precision_score(y, s),
                              aupr_out=average_precision_score(1 - y, -s),
                              fpr95=fpr[np.argmax(tpr >= 0.95)])
    return res


def best_of(fn, repeat):
    """Best wall and CPU seconds of repeat runs (CPU time does not count
    waiting for a core on a shared machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--save", help="write the arrays as .npy into this folder")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    id_cos, id_labels = sims(rng, N, True)
    fit_cos, fit_labels = sims(rng, FIT, True)
    oods = [sims(rng, OOD_N, False)[0] for _ in range(OOD_SETS)]
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        np.save(os.path.join(args.save, "id_cos.npy"), id_cos)
        np.save(os.path.join(args.save, "id_labels.npy"), id_labels)
        np.save(os.path.join(args.save, "fit_cos.npy"), fit_cos)
        np.save(os.path.join(args.save, "fit_labels.npy"), fit_labels)
        for k, o in enumerate(oods):
            np.save(os.path.join(args.save, f"ood{k}_cos.npy"), o)
    core = best_of(lambda: sklearn_core(id_cos, id_labels, oods), args.repeat)
    full = best_of(lambda: python_all(id_cos, id_labels, fit_cos, fit_labels, oods), args.repeat)
    print(json.dumps({"sklearn_core_s": round(core[0], 4), "sklearn_core_cpu_s": round(core[1], 4),
                      "python_all_s": round(full[0], 4), "python_all_cpu_s": round(full[1], 4),
                      "n": N, "classes": C, "fit": FIT, "ood_sets": OOD_SETS, "ood_n": OOD_N}))


if __name__ == "__main__":
    main()
