"""Verification metrics: AUC, EER and ROC, from scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def auc_eer(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    """AUC and equal error rate with genuine as the positive class (higher = more genuine)."""
    genuine, impostor = np.asarray(genuine, float), np.asarray(impostor, float)
    if len(genuine) == 0 or len(impostor) == 0:
        return {"auc": None, "eer": None, "n_genuine": len(genuine), "n_impostor": len(impostor)}
    y = np.concatenate((np.ones(len(genuine)), np.zeros(len(impostor))))
    s = np.concatenate((genuine, impostor))
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return {
        "auc": float(roc_auc_score(y, s)),
        "eer": float((fpr[i] + fnr[i]) / 2),
        "n_genuine": int(len(genuine)),
        "n_impostor": int(len(impostor)),
    }


def roc(genuine, impostor):
    y = np.concatenate((np.ones(len(genuine)), np.zeros(len(impostor))))
    fpr, tpr, _ = roc_curve(y, np.concatenate((genuine, impostor)))
    return fpr, tpr
