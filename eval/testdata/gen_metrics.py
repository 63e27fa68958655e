#!/usr/bin/python3
"""Generate the eval package's metric fixtures with scikit-learn and SciPy.

Run from the repository root with Debian's Python (python3-sklearn,
python3-scipy, python3-numpy):

    /usr/bin/python3 eval/testdata/gen_metrics.py

Each case folder under eval/testdata/metrics/ holds id_cos.npy,
id_labels.npy, optionally fit_cos.npy/fit_labels.npy and ood_<name>_cos.npy,
and expected.json with the settings and the reference values. The data are
built to contain ties that both implementations see exactly: similarities
are multiples of 1/256 (exact in float32), some rows are exact copies of
others (identical rows give bit-identical scores in any implementation) and
some OOD rows copy ID rows (ties across the two classes of the ROC curve).

Definitions (the eval package documents the same):
  probs = softmax(logit_scale * cos); acc@k ranks classes by cos, ties to the
  lower class index (stable argsort); ECE bins [lo, hi) from
  linspace(0, 1, bins+1), confidence 1 in the last bin; AURC = mean over k of
  the error rate of the k most confident rows (stable sort); E-AURC subtracts
  the ideal ordering's AURC; OOD: ID positive, roc_auc_score,
  average_precision_score (aupr_in), average_precision_score of OOD with the
  negated score (aupr_out), FPR at the first roc_curve point with TPR >= 0.95.
"""
import json
import os

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp, softmax
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics")


def classification(cos, labels, scale, bins):
    cos = cos.astype(np.float64)
    logits = scale * cos
    probs = softmax(logits, axis=1)
    logp = log_softmax(logits, axis=1)
    n = len(labels)
    order = np.argsort(-cos, axis=1, kind="stable")
    acc1 = float(np.mean(order[:, 0] == labels))
    acc5 = float(np.mean([labels[i] in order[i, :5] for i in range(n)]))
    nll = float(-np.mean(logp[np.arange(n), labels]))
    onehot = np.zeros_like(probs)
    onehot[np.arange(n), labels] = 1
    brier = float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))
    conf = probs.max(axis=1)
    correct = (order[:, 0] == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    ece, mce = 0.0, 0.0
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        mask = (conf >= lo) & ((conf < hi) if b < bins - 1 else (conf <= hi))
        if mask.any():
            gap = abs(correct[mask].mean() - conf[mask].mean())
            ece += mask.mean() * gap
            mce = max(mce, gap)
    rank = np.argsort(-conf, kind="stable")
    errs = 1 - correct[rank]
    risks = np.cumsum(errs) / np.arange(1, n + 1)
    aurc = float(risks.mean())
    ideal = np.sort(errs)  # correct first
    eaurc = aurc - float((np.cumsum(ideal) / np.arange(1, n + 1)).mean())
    return dict(acc1=acc1, acc5=acc5, nll=nll, brier=brier, ece=float(ece),
                mce=float(mce), aurc=aurc, e_aurc=eaurc)


def fit_temperature(cos, labels, scale):
    logits = scale * cos.astype(np.float64)
    n = len(labels)

    def nll(log_t):
        return -np.mean(log_softmax(logits / np.exp(log_t), axis=1)[np.arange(n), labels])

    res = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(1e3)), method="bounded",
                          options={"xatol": 1e-10})
    return float(np.exp(res.x))


def ood_scores(cos, tau):
    cos = cos.astype(np.float64)
    return {
        "mcm": softmax(cos / tau, axis=1).max(axis=1),
        "max_cosine": cos.max(axis=1),
        "energy": tau * logsumexp(cos / tau, axis=1),
    }


def detection(s_id, s_ood):
    y = np.concatenate([np.ones(len(s_id)), np.zeros(len(s_ood))])
    s = np.concatenate([s_id, s_ood])
    fpr, tpr, _ = roc_curve(y, s)
    return dict(
        auroc=float(roc_auc_score(y, s)),
        aupr_in=float(average_precision_score(y, s)),
        aupr_out=float(average_precision_score(1 - y, -s)),
        fpr95=float(fpr[np.argmax(tpr >= 0.95)]),
    )


def quantised(rng, n, c, labels=None, dtype=np.float32, spread=0.05):
    """Cosines in multiples of 1/256 around 0.2, the label's column raised."""
    cos = 0.2 + spread * rng.standard_normal((n, c))
    if labels is not None:
        cos[np.arange(n), labels] += rng.uniform(0, 2 * spread, n)
    return (np.round(cos * 256) / 256).astype(dtype)


def copy_rows(rng, dst, src, k):
    """Overwrite k random rows of dst with k random rows of src."""
    di = rng.choice(len(dst), k, replace=False)
    si = rng.choice(len(src), k, replace=True)
    dst[di] = src[si]
    return di, si


def write_case(name, scale, tau, bins, id_cos, id_labels, fit=None, ood=()):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "id_cos.npy"), id_cos)
    np.save(os.path.join(d, "id_labels.npy"), id_labels.astype(np.int64))
    exp = classification(id_cos, id_labels, scale, bins)
    if fit is not None:
        np.save(os.path.join(d, "fit_cos.npy"), fit[0])
        np.save(os.path.join(d, "fit_labels.npy"), fit[1].astype(np.int64))
        t = fit_temperature(fit[0], fit[1], scale)
        ts = classification(id_cos, id_labels, scale / t, bins)
        exp.update(temperature=t, ts_ece=ts["ece"], ts_nll=ts["nll"])
    names = []
    if ood:
        sid = ood_scores(id_cos, tau)
        mean = {}
        for set_name, cos in ood:
            names.append(set_name)
            np.save(os.path.join(d, f"ood_{set_name}_cos.npy"), cos)
            so = ood_scores(cos, tau)
            for kind in sid:
                det = detection(sid[kind], so[kind])
                for k, v in det.items():
                    exp[f"{set_name}/{kind}/{k}"] = v
                    if kind == "mcm":
                        mean[k] = mean.get(k, 0.0) + v / len(ood)
        exp.update(mean)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(dict(logit_scale=scale, mcm_temperature=tau, ece_bins=bins,
                       ood_sets=names, expected=exp), f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    rng = np.random.default_rng(20261127)

    # ties: float32, duplicated rows, saturated (confidence exactly 1) rows,
    # OOD rows copied from ID rows, two OOD sets.
    n, c = 300, 10
    labels = rng.integers(0, c, n)
    cos = quantised(rng, n, c, labels)
    di, si = copy_rows(rng, cos, cos, 40)
    labels[di] = labels[si]
    # Saturated rows: a logit gap of 125 makes the confidence exactly 1, or
    # exactly 1/2 with two top classes. The rows are identical copies (rows
    # that are only permutations of each other give scores that may differ
    # in the last bit, differently in each implementation).
    sat = rng.choice(n, 12, replace=False)
    cos[sat] = -0.5
    cos[sat, 3] = 0.75
    labels[sat] = 3
    cos[sat[:4], 6] = 0.75
    fit_labels = rng.integers(0, c, 200)
    fit_cos = quantised(rng, 200, c, fit_labels)
    near = quantised(rng, 150, c)
    copy_rows(rng, near, cos, 30)
    far = quantised(rng, 100, c, spread=0.02)
    copy_rows(rng, far, cos, 10)
    write_case("ties", 100.0, 1.0, 15, cos, labels, (fit_cos, fit_labels),
               [("near", near), ("far", far)])

    # single_class: C = 1, every probability is 1, every MCM score ties.
    cos = quantised(rng, 50, 1)
    write_case("single_class", 100.0, 1.0, 15, cos, np.zeros(50, np.int64),
               ood=[("other", quantised(rng, 30, 1))])

    # float64 inputs, another logit scale, MCM temperature and bin count.
    n, c = 400, 7
    labels = rng.integers(0, c, n)
    cos = quantised(rng, n, c, labels, np.float64, spread=0.1)
    fit_labels = rng.integers(0, c, 150)
    fit_cos = quantised(rng, 150, c, fit_labels, np.float64, spread=0.1)
    ood = quantised(rng, 250, c, dtype=np.float64, spread=0.1)
    copy_rows(rng, ood, cos, 25)
    write_case("float64_scale50", 50.0, 0.5, 10, cos, labels, (fit_cos, fit_labels),
               [("ood", ood)])


if __name__ == "__main__":
    main()
